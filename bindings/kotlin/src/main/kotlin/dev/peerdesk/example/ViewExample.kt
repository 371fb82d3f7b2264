// Views a shared screen and prints what arrives: `java -cp ... dev.peerdesk.example.ViewExampleKt ws://host:8080/ws CODE`
package dev.peerdesk.example

import dev.peerdesk.Viewer
import dev.peerdesk.ViewerCallbacks
import dev.peerdesk.ViewerOptions
import dev.peerdesk.frames
import dev.peerdesk.plane
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val viewer = Viewer.join(ViewerOptions(serverUrl = args[0], code = args[1], name = "Kotlin example"), ViewerCallbacks { name, rest ->
        println("event $name $rest")
    })
    println("connected to ${viewer.hostName()} (${viewer.width()}x${viewer.height()})")
    viewer.frames().take(30).forEach { frame ->
        frame.use { println("frame ${it.width()}x${it.height()}, luma bytes ${it.plane(0).remaining()}") }
    }
    viewer.leave()
}
