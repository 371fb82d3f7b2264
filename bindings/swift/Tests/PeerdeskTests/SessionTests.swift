// A real host and viewer through the Swift bindings, over loopback WebRTC with the signaling server process.
// Run with bindings/swift/test.sh (it builds the library and the server and sets PEERDESK_SERVER).
import Foundation
import XCTest
@testable import Peerdesk

final class SessionTests: XCTestCase {
    private var server: Process!
    private var url = ""

    override func setUpWithError() throws {
        let binary = try XCTUnwrap(ProcessInfo.processInfo.environment["PEERDESK_SERVER"], "PEERDESK_SERVER not set")
        server = Process()
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = ["--listen", "127.0.0.1:0"]
        let pipe = Pipe()
        server.standardOutput = pipe
        try server.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            line.append(pipe.fileHandleForReading.readData(ofLength: 1))
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(text.hasPrefix("listening on "), text)
        url = "ws://\(text.dropFirst("listening on ".count))/ws"
    }

    override func tearDown() {
        server.terminate()
        server.waitUntilExit()
    }

    private func startHost(_ consent: @escaping (String, String) -> Permissions?, onEvent: @escaping (String, [String]) -> Void = { _, _ in }) async throws -> Host {
        let options = HostOptions(serverUrl: url, name: "swift host", fps: 30, maxBitrateBps: 4_000_000, loopback: true, iceServers: [])
        return try await Host.start(options: options, source: .synthetic(width: 640, height: 360), listener: HostCallbacks(consent: consent, onEvent: onEvent))
    }

    private func viewerOptions(_ code: String) -> ViewerOptions {
        ViewerOptions(serverUrl: url, code: code, name: "xctest", loopback: true, frameQueue: 3, iceServers: [])
    }

    func testViewerReceivesStampedFramesInOrder() async throws {
        let host = try await startHost { _, _ in .viewOnly }
        XCTAssertEqual(host.code().count, 10)
        let viewer = try await Viewer.join(options: viewerOptions(host.code()), listener: ViewerCallbacks())
        XCTAssertEqual(viewer.width(), 640)
        var numbers: [UInt32] = []
        for _ in 0..<15 {
            let frame = try XCTUnwrap(viewer.nextFrame(timeoutMs: 5000))
            XCTAssertGreaterThanOrEqual(frame.plane(0).count, Int(frame.stride(plane: 0)) * Int(frame.height() - 1))
            numbers.append(try XCTUnwrap(frame.stamp()).frameNumber)
            frame.release()
        }
        XCTAssertEqual(numbers, numbers.sorted())
        XCTAssertEqual(Set(numbers).count, numbers.count)
        await viewer.leave()
        await host.end(reason: "done")
    }

    func testConsentDeniedThrowsDenied() async throws {
        let host = try await startHost { _, _ in nil }
        do {
            _ = try await Viewer.join(options: viewerOptions(host.code()), listener: ViewerCallbacks())
            XCTFail("join must fail")
        } catch SessionError.Denied(let reason) {
            XCTAssertEqual(reason, "the host declined")
        }
        await host.end(reason: "done")
    }

    func testViewOnlyInputIsRefusedByTheHost() async throws {
        let refused = expectation(description: "refused")
        let host = try await startHost { _, _ in .viewOnly }
        let viewer = try await Viewer.join(options: viewerOptions(host.code()), listener: ViewerCallbacks { name, args in
            if name == "refused" && args.first == "PermissionDenied" { refused.fulfill() }
        })
        try viewer.sendInput(event: .pointerMove(x: 0.5, y: 0.5))
        await fulfillment(of: [refused], timeout: 20)
        await viewer.leave()
        await host.end(reason: "done")
    }

    func testVerificationCodesMatchAndConfirmationGrantsControl() async throws {
        let hostCode = expectation(description: "the host's verification code")
        let granted = expectation(description: "control after confirmation")
        final class Received: @unchecked Sendable { var args: [String] = [] }
        let received = Received()
        let options = HostOptions(serverUrl: url, name: "swift host", fps: 30, maxBitrateBps: 4_000_000, loopback: true, iceServers: [], requireVerification: true)
        let host = try await Host.start(options: options, source: .synthetic(width: 320, height: 240), listener: HostCallbacks(consent: { _, _ in .control }) { name, args in
            if name == "verification" { received.args = args; hostCode.fulfill() }
        })
        let viewer = try await Viewer.join(options: viewerOptions(host.code()), listener: ViewerCallbacks { name, args in
            if name == "permissions" && args.first == "true" { granted.fulfill() }
        })
        await fulfillment(of: [hostCode], timeout: 20)
        XCTAssertEqual(received.args.count, 2)
        XCTAssertEqual(received.args[1], viewer.verificationCode())
        XCTAssertFalse(viewer.permissions().control)
        try host.confirmVerification(viewer: received.args[0])
        await fulfillment(of: [granted], timeout: 20)
        await viewer.leave()
        await host.end(reason: "done")
    }

    func testErrorsMapToSwiftErrors() async throws {
        do {
            _ = try await Viewer.join(options: viewerOptions("0000000000"), listener: ViewerCallbacks())
            XCTFail("join must fail")
        } catch SessionError.InvalidCode {}
        let host = try await startHost { _, _ in .viewOnly }
        XCTAssertThrowsError(try host.pushFrame(data: Data(count: 16), width: 2, height: 2, stride: 8, format: .bgra, timestampUs: 0))
        await host.end(reason: "done")
    }
}
