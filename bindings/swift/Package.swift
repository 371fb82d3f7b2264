// swift-tools-version:5.9
// The peerdesk Swift package: the uniffi-generated API and PeerdeskExtensions.swift (Sources/Peerdesk) over
// libpeerdesk_ffi (Sources/PeerdeskFFI: the C header and module map).
//
// Two ways to get the native library:
// - Apple apps: `bindings/swift/xcframework.sh` builds PeerdeskFFI.xcframework (iOS, iOS simulator, macOS); with
//   PEERDESK_XCFRAMEWORK pointing at it, PeerdeskFFI is a binary target.
// - Development (Linux, macOS): build the library (`cargo build --profile ci -p peerdesk-ffi`) and point
//   PEERDESK_LIB_DIR at the folder holding it (default: the workspace's target/ci).
import PackageDescription
import Foundation

let environment = ProcessInfo.processInfo.environment
let libDir = environment["PEERDESK_LIB_DIR"] ?? "../../target/ci"

let ffi: Target = {
    if let xcframework = environment["PEERDESK_XCFRAMEWORK"] {
        return .binaryTarget(name: "PeerdeskFFI", path: xcframework)
    }
    return .systemLibrary(name: "PeerdeskFFI", path: "Sources/PeerdeskFFI/include")
}()

let package = Package(
    name: "Peerdesk",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [.library(name: "Peerdesk", targets: ["Peerdesk"])],
    targets: [
        ffi,
        .target(
            name: "Peerdesk",
            dependencies: ["PeerdeskFFI"],
            path: "Sources/Peerdesk",
            linkerSettings: environment["PEERDESK_XCFRAMEWORK"] == nil ? [.unsafeFlags(["-L", libDir])] : []
        ),
        .testTarget(name: "PeerdeskTests", dependencies: ["Peerdesk"], path: "Tests/PeerdeskTests"),
    ]
)
