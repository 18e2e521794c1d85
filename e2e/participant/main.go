// Command participant is the end-to-end test participant: a real WebRTC client that joins a
// LiveKit SFU with a given access token, reports what happens on stdout, and leaves on request.
//
// It exists so the end-to-end suite can produce genuine participant_joined / participant_left /
// participant_connection_aborted webhooks (a signalling-only client cannot: the SFU marks a
// participant active only once its media connection is up). See real-stack.md §8.1 and §9.
//
// Contract (one line per event on stdout):
//
//	JOINED                    after signalling and the peer connection are up
//	DISCONNECTED <reason>     when the SFU ends the session
//	ERROR <text>              on failure, then exit status 1
//	LEFT <reason>             after a requested leave, then exit status 0
//	PUBLISHED <sid>           after "publish", when the SFU accepted the track
//	PUBLISH_FAILED <text>     after "publish", when it did not (no canPublish grant)
//
// stdin: "leave" leaves with CLIENT_INITIATED, "leave <REASON>" with the named reason,
// "publish" publishes one Opus track, end of input behaves like "leave".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
)

// out serialises writes to stdout so that lines never interleave.
type out struct {
	mu sync.Mutex
}

func (o *out) line(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
	_ = os.Stdout.Sync()
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:7880", "LiveKit signalling URL")
	token := flag.String("token", "", "LiveKit access token (JWT)")
	mode := flag.String("mode", "normal", "normal | no-media")
	timeout := flag.Duration("connect-timeout", 20*time.Second, "time allowed for the join")
	flag.Parse()

	o := &out{}
	if *token == "" {
		o.line("ERROR missing --token")
		os.Exit(1)
	}
	if *mode != "normal" && *mode != "no-media" {
		o.line("ERROR unknown --mode %q", *mode)
		os.Exit(1)
	}

	done := make(chan struct{})
	var doneOnce sync.Once
	finish := func() { doneOnce.Do(func() { close(done) }) }

	cb := lksdk.NewRoomCallback()
	var room *lksdk.Room
	var leaving sync.Mutex
	left := false
	cb.OnDisconnected = func() {
		leaving.Lock()
		defer leaving.Unlock()
		if left {
			return
		}
		reason := livekit.DisconnectReason_UNKNOWN_REASON
		if room != nil {
			reason = room.DisconnectReason()
		}
		o.line("DISCONNECTED %s", reason.String())
		finish()
	}

	opts := []lksdk.ConnectOption{
		lksdk.WithAutoSubscribe(false),
		lksdk.WithDisableTURN(),
		lksdk.WithConnectTimeout(*timeout),
	}
	if *mode == "no-media" {
		// Relay-only with TURN removed: no candidate can ever be used, so the media
		// connection never comes up and the SFU reports a connection abort.
		opts = append(opts, lksdk.WithICETransportPolicy(webrtc.ICETransportPolicyRelay))
	}

	r, err := lksdk.ConnectToRoomWithToken(*url, *token, cb, opts...)
	if err != nil {
		o.line("ERROR %s", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	leaving.Lock()
	room = r
	leaving.Unlock()
	o.line("JOINED")

	lines := make(chan string)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			lines <- strings.TrimSpace(scanner.Text())
		}
		close(lines)
	}()

	for {
		select {
		case <-done:
			os.Exit(0)
		case cmd, ok := <-lines:
			if ok && cmd == "" {
				continue
			}
			if ok && cmd == "publish" {
				// Publishes one Opus track in the background: PUBLISHED <track sid>, or
				// PUBLISH_FAILED <error> when the SFU does not accept it (e.g. canPublish false).
				go func() {
					track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{
						MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
					})
					if err == nil {
						var pub *lksdk.LocalTrackPublication
						pub, err = r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "probe"})
						if err == nil {
							o.line("PUBLISHED %s", pub.SID())
							return
						}
					}
					o.line("PUBLISH_FAILED %s", strings.ReplaceAll(err.Error(), "\n", " "))
				}()
				continue
			}
			reason := livekit.DisconnectReason_CLIENT_INITIATED
			if ok {
				fields := strings.Fields(cmd)
				if fields[0] != "leave" || len(fields) > 2 {
					o.line("ERROR unknown command %q", cmd)
					continue
				}
				if len(fields) == 2 {
					v, known := livekit.DisconnectReason_value[fields[1]]
					if !known {
						o.line("ERROR unknown reason %q", fields[1])
						continue
					}
					reason = livekit.DisconnectReason(v)
				}
			}
			leaving.Lock()
			left = true
			leaving.Unlock()
			r.DisconnectWithReason(reason)
			o.line("LEFT %s", reason.String())
			os.Exit(0)
		}
	}
}
