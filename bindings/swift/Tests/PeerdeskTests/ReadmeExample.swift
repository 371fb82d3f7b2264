import Peerdesk

/// Joins the host that owns `code`, prints its chat lines as they come and the size of 30 frames, then leaves.
func watch(server: String, code: String) async throws {
    let session = try await join(options: ViewerOptions(serverUrl: server, code: code, name: "Swift example"))
    let chat = Task {
        for await event in session.events {
            if case let .chat(text) = event { print("host says: \(text)") }
        }
    }
    var frames = 0
    for await frame in session.frames() {
        print("frame \(frame.width())x\(frame.height()), luma bytes \(frame.plane(0).count)")
        frame.release()
        frames += 1
        if frames == 30 { break }
    }
    chat.cancel()
    await session.viewer.leave()
}
