/** placeholder */
import "@livekit/protocol";
import "livekit-server-sdk";
import "redis";
import "fast-check";
