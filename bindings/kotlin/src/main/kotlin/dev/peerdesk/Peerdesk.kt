// A thin idiomatic layer over the generated bindings (dev.peerdesk.*): suspend functions, typed events as a Flow
// over the generated sealed classes, frames as a Flow, plane buffers (a copy by default; zero-copy only inside a
// block).
package dev.peerdesk

import com.sun.jna.Pointer
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.receiveAsFlow
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

/**
 * Decoded frames as they arrive, until the session ends. Collecting suspends without blocking a thread or polling;
 * frames collected too slowly are dropped oldest first (`ViewerStats.framesDropped`). Close or [releaseSafely]
 * each frame when done with it.
 */
fun Viewer.frames(): Flow<VideoFrame> = flow {
    while (true) {
        emit(receiveFrame() ?: break)
    }
}

/** Events kept for a collector slower than they come; beyond it the oldest is dropped (never memory). */
const val EVENT_BUFFER = 256

/** A started host and its typed events: `session.events.collect { event -> when (event) { ... } }`. */
class HostSession internal constructor(val host: Host, private val channel: Channel<HostEvent>) {
    /** [HostEvent]s in order, completing after [HostEvent.Ended]; one collector at a time. */
    val events: Flow<HostEvent> = channel.receiveAsFlow()
}

/** A joined viewer and its typed events. */
class ViewerSession internal constructor(val viewer: Viewer, private val channel: Channel<ViewerEvent>) {
    /** [ViewerEvent]s in order, completing after [ViewerEvent.Ended]; one collector at a time. */
    val events: Flow<ViewerEvent> = channel.receiveAsFlow()

    /** Decoded frames; see [Viewer.frames]. */
    fun frames(): Flow<VideoFrame> = viewer.frames()
}

private class HostEvents(private val consent: ((JoinRequest) -> Permissions?)?) : HostListener {
    val channel = Channel<HostEvent>(EVENT_BUFFER, BufferOverflow.DROP_OLDEST)
    override fun onEvent(event: HostEvent) {
        val decide = consent
        if (decide != null && event is HostEvent.JoinRequest) {
            val permissions = runCatching { decide(event.request) }.getOrNull()
            if (permissions == null) event.request.deny("the host declined") else event.request.allow(permissions)
        }
        channel.trySend(event)
        if (event is HostEvent.Ended) channel.close()
    }
}

private class ViewerEvents : ViewerListener {
    val channel = Channel<ViewerEvent>(EVENT_BUFFER, BufferOverflow.DROP_OLDEST)
    override fun onEvent(event: ViewerEvent) {
        channel.trySend(event)
        if (event is ViewerEvent.Ended) channel.close()
    }
}

/**
 * Starts sharing [source]. [consent] answers each join request with the permissions to admit the viewer, or null
 * to deny (`request.describe()` says who asks for what); without it, answer [HostEvent.JoinRequest] from
 * [HostSession.events].
 *
 * @throws SessionException when the server cannot be reached or the options are invalid.
 */
suspend fun share(options: HostOptions, source: ScreenSource, consent: ((JoinRequest) -> Permissions?)? = null): HostSession {
    val listener = HostEvents(consent)
    return HostSession(Host.start(options, source, listener), listener.channel)
}

/**
 * Joins the host that owns `options.code` (or `options.deviceId` for unattended access); returns once the host
 * consented and the connection is up.
 *
 * @throws SessionException.Denied, [SessionException.InvalidCode], [SessionException.AuthenticationFailed], ...
 */
suspend fun join(options: ViewerOptions): ViewerSession {
    val listener = ViewerEvents()
    return ViewerSession(Viewer.join(options, listener), listener.channel)
}
