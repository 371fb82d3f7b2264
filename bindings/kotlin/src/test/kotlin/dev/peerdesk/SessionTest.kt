package dev.peerdesk

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.test.assertEquals
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

    private suspend fun host(consent: (String, String) -> Permissions?, onEvent: (String, List<Any>) -> Unit = { _, _ -> }): Host =
        Host.start(
            HostOptions(serverUrl = url, name = "kotlin host", loopback = true),
            ScreenSource.Synthetic(640u, 360u),
            HostCallbacks(consent, onEvent),
        )

    private fun viewerOptions(code: String) = ViewerOptions(serverUrl = url, code = code, name = "junit", loopback = true)

    @Test
    fun viewerReceivesStampedFramesInOrder() = runBlocking {
        val host = host({ _, _ -> VIEW_ONLY })
        assertEquals(10, host.code().length)
        val viewer = withTimeout(30_000) { Viewer.join(viewerOptions(host.code()), ViewerCallbacks()) }
        assertEquals(640u, viewer.width())
        val numbers = viewer.frames().take(15).map { frame ->
            frame.use {
                assertEquals(it.height().toInt() * it.stride(0u).toInt(), it.plane(0).remaining())
                assertNotNull(it.stamp(), "frame stamp must survive encode and decode").frameNumber
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
        host.end("done")
    }

    @Test
    fun consentDeniedThrowsDenied() = runBlocking {
        val host = host({ _, _ -> null })
        val error = assertThrows<SessionException.Denied> { runBlocking { Viewer.join(viewerOptions(host.code()), ViewerCallbacks()) } }
        assertEquals("the host declined", error.reason)
        host.end("done")
    }

    @Test
    fun viewOnlyInputIsRefusedByTheHost() = runBlocking {
        val hostRefused = CompletableDeferred<String>()
        val viewerRefused = CompletableDeferred<String>()
        val host = host({ _, _ -> VIEW_ONLY }) { name, _ -> if (name == "refused") hostRefused.complete(name) }
        val viewer = Viewer.join(viewerOptions(host.code()), ViewerCallbacks { name, args ->
            if (name == "refused") viewerRefused.complete(args[0] as String)
        })
        viewer.sendInput(InputEvent.PointerMove(0.5f, 0.5f))
        assertEquals("PermissionDenied", withTimeout(20_000) { viewerRefused.await() })
        withTimeout(20_000) { hostRefused.await() }
        viewer.leave()
        host.end("done")
    }

    @Test
    fun verificationCodesMatchAndConfirmationGrantsControl() = runBlocking {
        val hostCode = CompletableDeferred<List<Any>>()
        val granted = CompletableDeferred<Permissions>()
        val host = Host.start(
            HostOptions(serverUrl = url, name = "kotlin host", loopback = true, requireVerification = true),
            ScreenSource.Synthetic(320u, 240u),
            HostCallbacks({ _, _ -> Permissions(control = true, clipboard = false) }) { name, args ->
                if (name == "verification") hostCode.complete(args)
            },
        )
        val viewer = Viewer.join(viewerOptions(host.code()), ViewerCallbacks { name, args ->
            if (name == "permissions") granted.complete(args[0] as Permissions)
        })
        val (viewerId, code) = withTimeout(20_000) { hostCode.await() }
        assertEquals(code, viewer.verificationCode())
        assertEquals(false, viewer.permissions().control)
        host.confirmVerification(viewerId as String)
        assertEquals(true, withTimeout(20_000) { granted.await() }.control)
        viewer.leave()
        host.end("done")
    }

    @Test
    fun errorsMapToTypedExceptions() = runBlocking {
        assertThrows<SessionException.InvalidCode> { runBlocking { Viewer.join(viewerOptions("0000000000"), ViewerCallbacks()) } }
        val host = host({ _, _ -> VIEW_ONLY })
        assertThrows<FrameException.NotAccepted> { host.pushFrame(java.nio.ByteBuffer.allocateDirect(16), 2u, 2u, 8u, PushFormat.BGRA, 0uL) }
        host.end("done")
    }

    @Test
    fun unattendedAccessWithTheSecretAndRefusalWithoutIt() = runBlocking {
        val dir = kotlin.io.path.createTempDirectory("peerdesk-kotlin-unattended").toFile()
        val key = java.io.File(dir, "device.key").path
        val policy = java.io.File(dir, "access.json").path
        val totp = addTechnicianAccess(policy, "alex", "correct horse battery", CONTROL, askCustomer = false, withTotp = false)
        assertEquals(null, totp)
        val deviceId = deviceIdOfKey(key)
        val events = java.util.Collections.synchronizedList(mutableListOf<String>())
        val host = Host.start(
            HostOptions(serverUrl = url, name = "kotlin device", loopback = true, deviceKeyPath = key, accessPolicyPath = policy),
            ScreenSource.Synthetic(320u, 240u),
            HostCallbacks({ _, _ -> null }) { name, _ -> events.add(name) },
        )
        assertEquals(deviceId, host.deviceId())
        val options = ViewerOptions(serverUrl = url, code = "", name = "alex", loopback = true, deviceId = deviceId, access = "alex", secret = "correct horse battery")
        val viewer = withTimeout(30_000) { Viewer.join(options, ViewerCallbacks()) }
        assertEquals(CONTROL, viewer.permissions())
        assertEquals(32, viewer.devicePublicKey()?.size)
        viewer.leave()
        val failed = assertThrows<SessionException.AuthenticationFailed> {
            runBlocking { Viewer.join(options.copy(secret = "wrong horse battery"), ViewerCallbacks()) }
        }
        assertEquals(1uL, failed.retryAfterSecs)
        assertTrue("unattended_access" in events, events.toString())
        host.end("done")
        dir.deleteRecursively()
        Unit
    }
}
