// Views a shared screen and prints what arrives: `java -cp ... dev.peerdesk.example.ViewExampleKt ws://host:8080/ws CODE`
package dev.peerdesk.example

import dev.peerdesk.ViewerEvent
import dev.peerdesk.ViewerOptions
import dev.peerdesk.join
import dev.peerdesk.plane
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val session = join(ViewerOptions(serverUrl = args[0], code = args[1], name = "Kotlin example"))
    val events = launch {
        session.events.collect { event ->
            when (event) {
                is ViewerEvent.Chat -> println("host says: ${event.text}")
                is ViewerEvent.Ended -> println("ended: ${event.reason}")
                else -> {}
            }
        }
    }
    println("connected to ${session.viewer.hostName()} (${session.viewer.width()}x${session.viewer.height()})")
    session.frames().take(30).collect { frame ->
        frame.use { println("frame ${it.width()}x${it.height()}, luma bytes ${it.plane(0).remaining()}") }
    }
    session.viewer.leave()
    events.cancel()
}
