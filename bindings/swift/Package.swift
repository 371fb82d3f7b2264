// swift-tools-version:5.9
// The peerdesk Swift package: the uniffi-generated API (Sources/Peerdesk) over libpeerdesk_ffi (Sources/PeerdeskFFI:
// the C header and module map). Build the library first (`cargo build --release -p peerdesk-ffi`); point
// PEERDESK_LIB_DIR at the folder holding it (default: the workspace's target/release). For Apple apps, ship an
// XCFramework instead (see README.md).
import PackageDescription
import Foundation

let libDir = ProcessInfo.processInfo.environment["PEERDESK_LIB_DIR"] ?? "../../target/release"

let package = Package(
    name: "Peerdesk",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [.library(name: "Peerdesk", targets: ["Peerdesk"])],
    targets: [
        .systemLibrary(name: "PeerdeskFFI", path: "Sources/PeerdeskFFI/include"),
        .target(
            name: "Peerdesk",
            dependencies: ["PeerdeskFFI"],
            path: "Sources/Peerdesk",
            linkerSettings: [.unsafeFlags(["-L", libDir])]
        ),
        .testTarget(name: "PeerdeskTests", dependencies: ["Peerdesk"], path: "Tests/PeerdeskTests"),
    ]
)
