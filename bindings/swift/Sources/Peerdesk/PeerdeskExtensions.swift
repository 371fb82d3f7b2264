// A thin idiomatic layer over the generated API: `share` / `join` as async functions, typed events and frames as
// AsyncStreams over the generated enums, zero-copy plane access and pushes from memory the app holds.
import Foundation

public extension Permissions {
    /// See the screen only.
    static let viewOnly = Permissions(control: false, clipboard: false)
    /// See and control with mouse and keyboard.
    static let control = Permissions(control: true, clipboard: false)
    /// Control and clipboard.
    static let full = Permissions(control: true, clipboard: true)
}

public extension VideoFrame {
    /// Plane `index` (0 = Y, 1 = U, 2 = V) without copying, valid until `release()`.
    func plane(_ index: UInt32) -> UnsafeRawBufferPointer {
        let length = Int(dataLength(plane: index))
        guard length > 0, let base = UnsafeRawPointer(bitPattern: UInt(dataPointer(plane: index))) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: base, count: length)
    }
}

public extension Host {
    /// Hands in a BGRA (or RGBA) frame straight from memory the app holds (a `CVPixelBuffer`'s base address,
    /// an `IOSurface`), without a copy: peerdesk reads it during the call. Throws `FrameError`.
    func pushFrame(_ pixels: UnsafeRawBufferPointer, width: UInt32, height: UInt32, stride: UInt32,
                   format: PushFormat = .bgra, timestampUs: UInt64) throws {
        guard let base = pixels.baseAddress else {
            throw FrameError.BadBuffer(details: "an empty buffer")
        }
        try pushFrameFromAddress(address: UInt64(UInt(bitPattern: base)), length: UInt64(pixels.count),
                                 width: width, height: height, stride: stride, format: format, timestampUs: timestampUs)
    }
}

public extension Viewer {
    /// Decoded frames as they arrive, until the session ends; awaiting never blocks a thread or polls. Frames
    /// taken too slowly are dropped oldest first (`ViewerStats.framesDropped`). `release()` each when done.
    func frames() -> AsyncStream<VideoFrame> {
        AsyncStream { continuation in
            let task = Task {
                while let frame = await self.receiveFrame() {
                    continuation.yield(frame)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Events kept for a reader slower than they come; beyond it the oldest is dropped (never memory).
public let eventBuffer = 256

/// A started host and its typed events: `for await event in session.events { switch event { ... } }`.
public final class HostSession: @unchecked Sendable {
    /// The host: code, permissions, pushed frames, `end(reason:)`.
    public let host: Host
    /// `HostEvent`s in order, finishing after `.ended`; one reader at a time.
    public let events: AsyncStream<HostEvent>

    init(host: Host, events: AsyncStream<HostEvent>) {
        self.host = host
        self.events = events
    }
}

/// A joined viewer and its typed events.
public final class ViewerSession: @unchecked Sendable {
    /// The viewer: frames, input, stats, `leave()`.
    public let viewer: Viewer
    /// `ViewerEvent`s in order, finishing after `.ended`; one reader at a time.
    public let events: AsyncStream<ViewerEvent>

    init(viewer: Viewer, events: AsyncStream<ViewerEvent>) {
        self.viewer = viewer
        self.events = events
    }

    /// Decoded frames; see `Viewer.frames()`.
    public func frames() -> AsyncStream<VideoFrame> { viewer.frames() }
}

private final class HostEvents: HostListener, @unchecked Sendable {
    private let consent: ((JoinRequest) -> Permissions?)?
    let stream: AsyncStream<HostEvent>
    private let continuation: AsyncStream<HostEvent>.Continuation

    init(consent: ((JoinRequest) -> Permissions?)?) {
        self.consent = consent
        (stream, continuation) = AsyncStream.makeStream(of: HostEvent.self, bufferingPolicy: .bufferingNewest(eventBuffer))
    }

    func onEvent(event: HostEvent) throws {
        if let consent, case let .joinRequest(request) = event {
            if let permissions = consent(request) {
                request.allow(permissions: permissions)
            } else {
                request.deny(reason: "the host declined")
            }
        }
        continuation.yield(event)
        if case .ended = event { continuation.finish() }
    }
}

private final class ViewerEvents: ViewerListener, @unchecked Sendable {
    let stream: AsyncStream<ViewerEvent>
    private let continuation: AsyncStream<ViewerEvent>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: ViewerEvent.self, bufferingPolicy: .bufferingNewest(eventBuffer))
    }

    func onEvent(event: ViewerEvent) throws {
        continuation.yield(event)
        if case .ended = event { continuation.finish() }
    }
}

/// Starts sharing `source`. `consent` answers each join request with the permissions to admit the viewer, or
/// nil to deny (`request.describe()` says who asks for what); without it, answer `.joinRequest` from `events`.
/// Throws `SessionError` when the server cannot be reached or the options are invalid.
public func share(options: HostOptions, source: ScreenSource,
                  consent: ((JoinRequest) -> Permissions?)? = nil) async throws -> HostSession {
    let listener = HostEvents(consent: consent)
    let host = try await Host.start(options: options, source: source, listener: listener)
    return HostSession(host: host, events: listener.stream)
}

/// Joins the host that owns `options.code` (or `options.deviceId` for unattended access); returns once the host
/// consented and the connection is up. Throws `SessionError.Denied`, `.InvalidCode`, `.AuthenticationFailed`, ...
public func join(options: ViewerOptions) async throws -> ViewerSession {
    let listener = ViewerEvents()
    let viewer = try await Viewer.join(options: options, listener: listener)
    return ViewerSession(viewer: viewer, events: listener.stream)
}
