// A thin idiomatic layer over the generated API: closure listeners and zero-copy plane access.
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

/// Host events as closures; `consent` returns the permissions to admit a viewer with, or nil to deny.
public final class HostCallbacks: HostListener, @unchecked Sendable {
    private let consent: (String, String) -> Permissions?
    private let onEvent: (String, [String]) -> Void

    public init(consent: @escaping (String, String) -> Permissions?, onEvent: @escaping (String, [String]) -> Void = { _, _ in }) {
        self.consent = consent
        self.onEvent = onEvent
    }

    public func onJoinRequest(request: JoinRequest) throws {
        if let permissions = consent(request.viewer(), request.name()) {
            request.allow(permissions: permissions)
        } else {
            request.deny(reason: "the host declined")
        }
    }
    public func onVerificationCode(viewer: String, code: String) throws { onEvent("verification", [viewer, code]) }
    public func onViewerConnected(viewer: String, name: String) throws { onEvent("connected", [viewer, name]) }
    public func onViewerReconnecting(viewer: String) throws { onEvent("reconnecting", [viewer]) }
    public func onViewerReconnected(viewer: String) throws { onEvent("reconnected", [viewer]) }
    public func onSignalingRestored(code: String) throws { onEvent("signaling_restored", [code]) }
    public func onViewerLeft(viewer: String, reason: String) throws { onEvent("left", [viewer, reason]) }
    public func onClipboard(viewer: String, text: String) throws { onEvent("clipboard", [viewer, text]) }
    public func onChat(viewer: String, text: String) throws { onEvent("chat", [viewer, text]) }
    public func onRefused(viewer: String, reason: String) throws { onEvent("refused", [viewer, reason]) }
    public func onEnded(reason: String) throws { onEvent("ended", [reason]) }
    public func onUnattendedAccess(viewer: String, access: String) throws { onEvent("unattended_access", [viewer, access]) }
    public func onAccessFailures(failures: UInt32, retryAfterSecs: UInt64) throws {
        onEvent("access_failures", [String(failures), String(retryAfterSecs)])
    }
}

/// Viewer events as one closure: `cursor`, `clipboard`, `chat`, `permissions`, `refused`, `ended`.
public final class ViewerCallbacks: ViewerListener, @unchecked Sendable {
    private let onEvent: (String, [String]) -> Void

    public init(onEvent: @escaping (String, [String]) -> Void = { _, _ in }) {
        self.onEvent = onEvent
    }

    public func onCursor(x: Float, y: Float, visible: Bool) throws { onEvent("cursor", ["\(x)", "\(y)", "\(visible)"]) }
    public func onClipboard(text: String) throws { onEvent("clipboard", [text]) }
    public func onChat(text: String) throws { onEvent("chat", [text]) }
    public func onPermissionsChanged(permissions: Permissions) throws { onEvent("permissions", ["\(permissions.control)", "\(permissions.clipboard)"]) }
    public func onRefused(code: String, message: String) throws { onEvent("refused", [code, message]) }
    public func onReconnecting() throws { onEvent("reconnecting", []) }
    public func onReconnected() throws { onEvent("reconnected", []) }
    public func onEnded(reason: String) throws { onEvent("ended", [reason]) }
}
