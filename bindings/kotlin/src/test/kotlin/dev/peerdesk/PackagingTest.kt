package dev.peerdesk

import com.sun.jna.NativeLibrary
import dev.peerdesk.example.main as viewExample
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Test
import java.io.ByteArrayOutputStream
import java.io.File
import java.io.PrintStream
import kotlin.test.assertEquals
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** How a user meets the package: the native library from the classpath, and the README's example as written. */
class PackagingTest {
    @Test
    fun theNativeLibraryComesFromTheClasspathNotALibraryPath() {
        assertNull(System.getProperty("jna.library.path"), "the tests run without -Djna.library.path")
        assertTrue(peerdeskVersion().isNotEmpty())
        val file = NativeLibrary.getInstance("peerdesk_ffi").file.path
        assertTrue("linux-x86-64" in file, "loaded from the classpath resource: $file")
    }

    @Test
    fun theReadmeExampleIsTheCompiledExampleAndRuns() = runBlocking {
        val readme = File("../README.md").readText()
        val source = File("src/main/kotlin/dev/peerdesk/example/ViewExample.kt").readText()
        assertTrue("```kotlin\n$source```" in readme, "bindings/README.md shows ViewExample.kt exactly as compiled")

        val binary = System.getProperty("peerdesk.server") ?: error("peerdesk.server not set")
        val server = ProcessBuilder(binary, "--listen", "127.0.0.1:0").redirectError(ProcessBuilder.Redirect.DISCARD).start()
        try {
            val url = "ws://${server.inputStream.bufferedReader().readLine().removePrefix("listening on ").trim()}/ws"
            val host = share(HostOptions(serverUrl = url, name = "README host"), ScreenSource.Synthetic(320u, 240u)) { VIEW_ONLY }
            val printed = ByteArrayOutputStream()
            val stdout = System.out
            System.setOut(PrintStream(printed, true))
            try {
                viewExample(arrayOf(url, host.host.code()))
            } finally {
                System.setOut(stdout)
            }
            val lines = printed.toString().lines()
            assertEquals("connected to README host (320x240)", lines.first())
            assertEquals(30, lines.count { it.startsWith("frame 320x240, luma bytes ") }, printed.toString())
            host.host.end("done")
        } finally {
            server.destroy()
        }
    }
}
