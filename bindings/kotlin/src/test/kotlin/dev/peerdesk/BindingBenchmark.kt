package dev.peerdesk

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import java.nio.ByteBuffer
import kotlin.concurrent.thread

/**
 * What crossing into Kotlin costs per frame on a 1080p loopback session. Runs only when asked:
 * `bindings/kotlin/test.sh -Dpeerdesk.bench=true -Dtest=BindingBenchmark`.
 */
class BindingBenchmark {
    @Test
    fun frameDeliveryAndPushCost() = runBlocking {
        assumeTrue(System.getProperty("peerdesk.bench") == "true", "benchmark runs only with -Dpeerdesk.bench=true")
        val binary = System.getProperty("peerdesk.server")
        val server = ProcessBuilder(binary, "--listen", "127.0.0.1:0").redirectError(ProcessBuilder.Redirect.DISCARD).start()
        val url = "ws://${server.inputStream.bufferedReader().readLine().removePrefix("listening on ").trim()}/ws"
        try {
            val (w, h) = 1920u to 1080u
            val host = share(HostOptions(serverUrl = url, loopback = true), ScreenSource.Pushed(w, h)) { VIEW_ONLY }.host
            val picture = ByteBuffer.allocateDirect((w * h * 4u).toInt())
            val pushMs = mutableListOf<Double>()
            val running = java.util.concurrent.atomic.AtomicBoolean(true)
            val pusher = thread {
                var n = 0
                while (running.get()) {
                    picture.put(n % 1000, (n and 0xff).toByte())
                    val t = System.nanoTime()
                    host.pushFrame(picture, w, h, w * 4u, PushFormat.BGRA, (n * 33_333).toULong())
                    synchronized(pushMs) { pushMs.add((System.nanoTime() - t) / 1e6) }
                    n++
                    Thread.sleep(33)
                }
            }
            val viewer = join(ViewerOptions(serverUrl = url, code = host.code(), loopback = true)).viewer
            val takeMs = mutableListOf<Double>()
            repeat(60) {
                Thread.sleep(50)
                val t = System.nanoTime()
                val frame = viewer.nextFrame(0u) ?: return@repeat
                val y = frame.plane(0)
                check(y.remaining() > 0 && frame.width() == w)
                takeMs.add((System.nanoTime() - t) / 1e6)
                frame.release()
                frame.close()
            }
            running.set(false)
            pusher.join()
            viewer.leave()
            host.end("done")
            fun p(v: List<Double>, q: Double) = v.sorted()[((v.size - 1) * q).toInt()]
            val pushes = synchronized(pushMs) { pushMs.toList() }
            println("kotlin push_frame 1080p BGRA: p50 %.2f ms, p95 %.2f ms (%d calls)".format(p(pushes, 0.5), p(pushes, 0.95), pushes.size))
            println("kotlin take a ready frame (nextFrame + Y ByteBuffer): p50 %.3f ms, p95 %.3f ms (%d frames)".format(p(takeMs, 0.5), p(takeMs, 0.95), takeMs.size))
        } finally {
            server.destroy()
        }
    }
}
