// A thin idiomatic layer over the generated bindings (dev.peerdesk.*): lambdas for listeners, frame sequences,
// plane buffers (a copy by default; zero-copy only inside a block).
package dev.peerdesk

import com.sun.jna.Pointer
import java.nio.ByteBuffer

/** View only: see the screen. */
val VIEW_ONLY = Permissions(control = false, clipboard = false)

/** See and control with mouse and keyboard. */
val CONTROL = Permissions(control = true, clipboard = false)

/** Control and clipboard. */
val FULL = Permissions(control = true, clipboard = true)

/**
 * A read-only copy of plane [index] (0 = Y, 1 = U, 2 = V); rows are `stride(index)` bytes apart. A copy, so it stays
 * valid after [VideoFrame.release] (a direct buffer on the frame's memory would be read after free). For
 * zero-copy access use [withPlane].
 */
fun VideoFrame.plane(index: Int): ByteBuffer = withPlane(index) { view ->
    val copy = ByteBuffer.allocate(view.remaining())
    copy.put(view)
    copy.flip()
    copy.asReadOnlyBuffer()
}

/**
 * Runs [block] with a zero-copy, read-only direct buffer on plane [index], and releases nothing itself. The
 * buffer is valid only inside [block]: the frame is kept from being released until [block] returns (a [release]
 * from another thread waits), and the buffer must not be kept after it.
 */
fun <T> VideoFrame.withPlane(index: Int, block: (ByteBuffer) -> T): T = synchronized(this) {
    val length = dataLength(index.toUInt()).toLong()
    val pointer = dataPointer(index.toUInt()).toLong()
    val view = if (length == 0L || pointer == 0L) {
        ByteBuffer.allocate(0).asReadOnlyBuffer()
    } else {
        Pointer(pointer).getByteBuffer(0, length).asReadOnlyBuffer()
    }
    block(view)
}

/** Releases the frame's picture now; waits for any [withPlane] block on it to finish. */
fun VideoFrame.releaseSafely() = synchronized(this) { release() }

/** Decoded frames as they arrive, until the session ends or none comes within [timeoutMs]. */
fun Viewer.frames(timeoutMs: UInt = 5000u): Sequence<VideoFrame> = generateSequence { nextFrame(timeoutMs) }

/** Host events as lambdas; [consent] returns the permissions to admit a viewer with, or null to deny. */
class HostCallbacks(
    private val consent: (viewer: String, name: String) -> Permissions?,
    private val onEvent: (name: String, args: List<Any>) -> Unit = { _, _ -> },
) : HostListener {
    override fun onJoinRequest(request: JoinRequest) {
        val permissions = runCatching { consent(request.viewer(), request.name()) }.getOrNull()
        if (permissions == null) request.deny("the host declined") else request.allow(permissions)
    }
    override fun onVerificationCode(viewer: String, code: String) = emit("verification", viewer, code)
    override fun onViewerConnected(viewer: String, name: String) = emit("connected", viewer, name)
    override fun onViewerReconnecting(viewer: String) = emit("reconnecting", viewer)
    override fun onViewerReconnected(viewer: String) = emit("reconnected", viewer)
    override fun onSignalingRestored(code: String) = emit("signaling_restored", code)
    override fun onViewerLeft(viewer: String, reason: String) = emit("left", viewer, reason)
    override fun onClipboard(viewer: String, text: String) = emit("clipboard", viewer, text)
    override fun onChat(viewer: String, text: String) = emit("chat", viewer, text)
    override fun onRefused(viewer: String, reason: String) = emit("refused", viewer, reason)
    override fun onEnded(reason: String) = emit("ended", reason)
    override fun onUnattendedAccess(viewer: String, access: String) = emit("unattended_access", viewer, access)
    override fun onAccessFailures(failures: UInt, retryAfterSecs: ULong) = emit("access_failures", failures, retryAfterSecs)
    private fun emit(name: String, vararg args: Any) {
        runCatching { onEvent(name, args.toList()) }
    }
}

/** Viewer events as one lambda: `cursor`, `clipboard`, `chat`, `permissions`, `refused`, `reconnecting`, `reconnected`, `ended`. */
class ViewerCallbacks(private val onEvent: (name: String, args: List<Any>) -> Unit = { _, _ -> }) : ViewerListener {
    override fun onCursor(x: Float, y: Float, visible: Boolean) = emit("cursor", x, y, visible)
    override fun onClipboard(text: String) = emit("clipboard", text)
    override fun onChat(text: String) = emit("chat", text)
    override fun onPermissionsChanged(permissions: Permissions) = emit("permissions", permissions)
    override fun onRefused(code: String, message: String) = emit("refused", code, message)
    override fun onReconnecting() = emit("reconnecting")
    override fun onReconnected() = emit("reconnected")
    override fun onEnded(reason: String) = emit("ended", reason)
    private fun emit(name: String, vararg args: Any) {
        runCatching { onEvent(name, args.toList()) }
    }
}
