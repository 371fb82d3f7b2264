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

    private func startHost(requireVerification: Bool = false,
                           _ consent: ((JoinRequest) -> Permissions?)?) async throws -> HostSession {
        let options = HostOptions(serverUrl: url, name: "swift host", fps: 30, maxBitrateBps: 4_000_000, loopback: true,
                                  iceServers: [], requireVerification: requireVerification)
        return try await share(options: options, source: .synthetic(width: 640, height: 360), consent: consent)
    }

    private func viewerOptions(_ code: String) -> ViewerOptions {
        ViewerOptions(serverUrl: url, code: code, name: "xctest", loopback: true, frameQueue: 3, iceServers: [])
    }

    func testViewerReceivesStampedFramesInOrder() async throws {
        let host = try await startHost { _ in .viewOnly }
        XCTAssertEqual(host.host.code().count, 10)
        let session = try await join(options: viewerOptions(host.host.code()))
        XCTAssertEqual(session.viewer.width(), 640)
        var numbers: [UInt32] = []
        for await frame in session.frames() {
            XCTAssertGreaterThanOrEqual(frame.plane(0).count, Int(frame.stride(plane: 0)) * Int(frame.height() - 1))
            numbers.append(try XCTUnwrap(frame.stamp()).frameNumber)
            frame.release()
            if numbers.count == 15 { break }
        }
        XCTAssertEqual(numbers.count, 15)
        XCTAssertEqual(numbers, numbers.sorted())
        XCTAssertEqual(Set(numbers).count, numbers.count)
        await session.viewer.leave()
        await host.host.end(reason: "done")
    }

    func testConsentDeniedThrowsDenied() async throws {
        let host = try await startHost { _ in nil }
        do {
            _ = try await join(options: viewerOptions(host.host.code()))
            XCTFail("join must fail")
        } catch SessionError.Denied(let reason) {
            XCTAssertEqual(reason, "the host declined")
        }
        await host.host.end(reason: "done")
    }

    func testViewOnlyInputIsRefusedByTheHost() async throws {
        let host = try await startHost { _ in .viewOnly }
        let session = try await join(options: viewerOptions(host.host.code()))
        try session.viewer.sendInput(event: .pointerMove(x: 0.5, y: 0.5))
        var refusal: RefusalCode?
        for await event in session.events {
            if case let .refused(code, _) = event { refusal = code; break }
        }
        XCTAssertEqual(refusal, .permissionDenied)
        await session.viewer.leave()
        await host.host.end(reason: "done")
    }

    func testVerificationCodesMatchAndConfirmationGrantsControl() async throws {
        let host = try await startHost(requireVerification: true) { _ in .control }
        let session = try await join(options: viewerOptions(host.host.code()))
        var shown: (viewer: String, code: String)?
        for await event in host.events {
            if case let .verificationCode(viewer, code) = event { shown = (viewer, code); break }
        }
        let (viewer, code) = try XCTUnwrap(shown)
        XCTAssertEqual(code, session.viewer.verificationCode())
        XCTAssertFalse(session.viewer.permissions().control)
        try host.host.confirmVerification(viewer: viewer)
        var granted = false
        for await event in session.events {
            if case let .permissionsChanged(permissions) = event { granted = permissions.control; break }
        }
        XCTAssertTrue(granted)
        await session.viewer.leave()
        await host.host.end(reason: "done")
    }

    func testTypedEventsAndStreamsEndToEnd() async throws {
        let host = try await startHost(nil)
        async let joining = join(options: viewerOptions(host.host.code()))
        var iterator = host.events.makeAsyncIterator()
        guard case let .joinRequest(request)? = await iterator.next() else { return XCTFail("a join request first") }
        XCTAssertEqual(request.name(), "xctest")
        request.allow(permissions: .viewOnly)
        let session = try await joining
        guard case .verificationCode? = await iterator.next() else { return XCTFail("the verification code next") }
        guard case let .viewerConnected(_, name)? = await iterator.next() else { return XCTFail("then connected") }
        XCTAssertEqual(name, "xctest")
        try host.host.sendChat(text: "hello")
        var chat: String?
        for await event in session.events {
            if case let .chat(text) = event { chat = text; break }
        }
        XCTAssertEqual(chat, "hello")
        XCTAssertGreaterThanOrEqual(session.viewer.stats().keyframes, 1)
        await host.host.end(reason: "done for today")
        var last: ViewerEvent?
        for await event in session.events { last = event }
        XCTAssertEqual(last, .ended(reason: "done for today"))
    }

    func testTheReadmeExampleRuns() async throws {
        let host = try await startHost { _ in .viewOnly }
        try await watch(server: url, code: host.host.code())
        await host.host.end(reason: "done")
    }

    func testErrorsMapToSwiftErrors() async throws {
        do {
            _ = try await join(options: viewerOptions("0000000000"))
            XCTFail("join must fail")
        } catch SessionError.InvalidCode {}
        let host = try await startHost { _ in .viewOnly }
        XCTAssertThrowsError(try host.host.pushFrame(data: Data(count: 16), width: 2, height: 2, stride: 8, format: .bgra, timestampUs: 0))
        await host.host.end(reason: "done")
    }
}
