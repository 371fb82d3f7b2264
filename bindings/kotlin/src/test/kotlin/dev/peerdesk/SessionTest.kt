package dev.peerdesk

import kotlinx.coroutines.async
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.test.assertEquals
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertTrue

/** A real host and viewer through the Kotlin bindings, over loopback WebRTC with the signaling server process. */
class SessionTest {
    private lateinit var server: Process
    private lateinit var url: String

    @BeforeEach
    fun startServer() {
        val binary = System.getProperty("peerdesk.server") ?: error("peerdesk.server not set")
        server = ProcessBuilder(binary, "--listen", "127.0.0.1:0").redirectError(ProcessBuilder.Redirect.DISCARD).start()
        val line = server.inputStream.bufferedReader().readLine()
        assertTrue(line.startsWith("listening on "), line)
        url = "ws://${line.removePrefix("listening on ").trim()}/ws"
    }

    @AfterEach
    fun stopServer() {
        server.destroy()
        server.waitFor()
    }

    private suspend fun host(requireVerification: Boolean = false, consent: ((JoinRequest) -> Permissions?)?): HostSession =
        share(
            HostOptions(serverUrl = url, name = "kotlin host", loopback = true, requireVerification = requireVerification),
            ScreenSource.Synthetic(640u, 360u),
            consent,
        )

    private fun viewerOptions(code: String) = ViewerOptions(serverUrl = url, code = code, name = "junit", loopback = true)

    @Test
    fun viewerReceivesStampedFramesInOrder() = runBlocking {
        val host = host { VIEW_ONLY }
        assertEquals(10, host.host.code().length)
        val session = withTimeout(30_000) { join(viewerOptions(host.host.code())) }
        val viewer = session.viewer
        assertEquals(640u, viewer.width())
        val numbers = session.frames().take(15).map { frame ->
            frame.use {
                assertEquals(it.height().toInt() * it.stride(0u).toInt(), it.plane(0).remaining())
                val stamp = assertNotNull(it.stamp(), "frame stamp must survive encode and decode")
                // The frame carries the host's capture time (the stamp holds the same clock in milliseconds).
                val carried = (it.captureTimestampUs() / 1000uL).toUInt()
                assertTrue(maxOf(carried, stamp.captureMillis) - minOf(carried, stamp.captureMillis) <= 1u,
                    "capture time $carried ms, stamped ${stamp.captureMillis} ms")
                stamp.frameNumber
            }
        }.toList()
        assertEquals(15, numbers.size)
        assertEquals(numbers.sorted(), numbers)
        assertEquals(numbers.size, numbers.toSet().size)
        assertTrue(viewer.stats().frames >= 15u)
        // A plane taken with plane() is a copy: still readable, and equal, after the frame is released (a view on
        // the frame's memory was read after free). withPlane() gives the zero-copy buffer inside its block only.
        val frame = assertNotNull(viewer.nextFrame(5000u))
        val zeroCopyFirstRow = frame.withPlane(0) { view -> ByteArray(64).also { view.get(it) } }
        val copy = frame.plane(0)
        frame.releaseSafely()
        assertEquals(0uL, frame.dataPointer(0u), "released")
        val copiedFirstRow = ByteArray(64).also { copy.duplicate().get(it) }
        assertTrue(zeroCopyFirstRow.contentEquals(copiedFirstRow))
        viewer.leave()
        host.host.end("done")
    }

    @Test
    fun consentDeniedThrowsDenied() = runBlocking {
        val host = host { null }
        val error = assertThrows<SessionException.Denied> { runBlocking { join(viewerOptions(host.host.code())) } }
        assertEquals("the host declined", error.reason)
        host.host.end("done")
    }

    @Test
    fun viewOnlyInputIsRefusedByTheHost() = runBlocking {
        val host = host { VIEW_ONLY }
        val viewer = join(viewerOptions(host.host.code()))
        viewer.viewer.sendInput(InputEvent.PointerMove(0.5f, 0.5f))
        val refused = withTimeout(20_000) { viewer.events.filterIsInstance<ViewerEvent.Refused>().first() }
        assertEquals(RefusalCode.PERMISSION_DENIED, refused.code)
        val hostSaw = withTimeout(20_000) { host.events.filterIsInstance<HostEvent.Refused>().first() }
        assertEquals(RefusalCode.PERMISSION_DENIED, hostSaw.code)
        viewer.viewer.leave()
        host.host.end("done")
    }

    @Test
    fun verificationCodesMatchAndConfirmationGrantsControl() = runBlocking {
        val host = host(requireVerification = true) { Permissions(control = true, clipboard = false) }
        val viewer = join(viewerOptions(host.host.code()))
        val shown = withTimeout(20_000) { host.events.filterIsInstance<HostEvent.VerificationCode>().first() }
        assertEquals(shown.code, viewer.viewer.verificationCode())
        assertEquals(false, viewer.viewer.permissions().control)
        host.host.confirmVerification(shown.viewer)
        val changed = withTimeout(20_000) { viewer.events.filterIsInstance<ViewerEvent.PermissionsChanged>().first() }
        assertEquals(true, changed.permissions.control)
        viewer.viewer.leave()
        host.host.end("done")
    }

    @Test
    fun typedEventsAndFlowsEndToEnd() = runBlocking {
        // No consent lambda: the app answers the join request from the host's event flow.
        val host = host(consent = null)
        val joining = async { join(viewerOptions(host.host.code())) }
        val request = assertIs<HostEvent.JoinRequest>(withTimeout(20_000) { host.events.first() }).request
        assertEquals("junit", request.name())
        assertTrue("junit" in request.describe(), request.describe())
        request.allow(VIEW_ONLY)
        val viewer = withTimeout(20_000) { joining.await() }
        assertIs<HostEvent.VerificationCode>(withTimeout(20_000) { host.events.first() })
        val connected = assertIs<HostEvent.ViewerConnected>(withTimeout(20_000) { host.events.first() })
        assertEquals("junit", connected.name)

        val numbers = viewer.frames().take(5).map { frame -> frame.use { assertNotNull(it.stamp()).frameNumber } }.toList()
        assertEquals(numbers.sorted(), numbers)

        host.host.sendChat("hello")
        viewer.viewer.sendChat("hi")
        assertEquals(ViewerEvent.Chat("hello"), withTimeout(20_000) { viewer.events.filterIsInstance<ViewerEvent.Chat>().first() })
        val chat = withTimeout(20_000) { host.events.filterIsInstance<HostEvent.Chat>().first() }
        assertEquals(connected.viewer to "hi", chat.viewer to chat.text)

        val stats = viewer.viewer.stats()
        assertTrue(stats.frames >= 5uL && stats.keyframes >= 1uL && stats.packetsRecovered <= stats.packetsNacked, stats.toString())
        assertTrue(host.host.stats().encodeTimeUs > 0uL, host.host.stats().toString())

        host.host.end("done for today")
        val rest = withTimeout(20_000) { viewer.events.toList() }
        assertEquals(ViewerEvent.Ended("done for today"), rest.last())
        withTimeout(20_000) { viewer.frames().toList() } // the frame flow completes too
        assertIs<HostEvent.Ended>(withTimeout(20_000) { host.events.toList() }.last())
        Unit
    }

    @Test
    fun errorsMapToTypedExceptions() = runBlocking {
        assertThrows<SessionException.InvalidCode> { runBlocking { join(viewerOptions("0000000000")) } }
        val host = host { VIEW_ONLY }
        assertThrows<FrameException.NotAccepted> { host.host.pushFrame(java.nio.ByteBuffer.allocateDirect(16), 2u, 2u, 8u, PushFormat.BGRA, 0uL) }
        host.host.end("done")
    }

    @Test
    fun unattendedAccessWithTheSecretAndRefusalWithoutIt() = runBlocking {
        val dir = kotlin.io.path.createTempDirectory("peerdesk-kotlin-unattended").toFile()
        val key = java.io.File(dir, "device.key").path
        val policy = java.io.File(dir, "access.json").path
        val totp = addTechnicianAccess(policy, "alex", "correct horse battery", CONTROL, askCustomer = false, withTotp = false)
        assertEquals(null, totp)
        val deviceId = deviceIdOfKey(key)
        val host = share(
            HostOptions(serverUrl = url, name = "kotlin device", loopback = true, deviceKeyPath = key, accessPolicyPath = policy),
            ScreenSource.Synthetic(320u, 240u),
        ) { null }
        assertEquals(deviceId, host.host.deviceId())
        val options = ViewerOptions(serverUrl = url, code = "", name = "alex", loopback = true, deviceId = deviceId, access = "alex", secret = "correct horse battery")
        val viewer = withTimeout(30_000) { join(options) }
        assertEquals(CONTROL, viewer.viewer.permissions())
        assertEquals(32, viewer.viewer.devicePublicKey()?.size)
        val access = withTimeout(20_000) { host.events.filterIsInstance<HostEvent.UnattendedAccess>().first() }
        assertEquals("alex", access.access)
        viewer.viewer.leave()
        val failed = assertThrows<SessionException.AuthenticationFailed> {
            runBlocking { join(options.copy(secret = "wrong horse battery")) }
        }
        assertEquals(1uL, failed.retryAfterSecs)
        host.host.end("done")
        dir.deleteRecursively()
        Unit
    }
}
