//! The writing half of a socket: drains its outbound queue, says goodbye
//! (a kick frame, a close frame) when it is stopped, then lingers so the
//! close frame is read.

use std::{sync::Arc, time::Duration};

use futures_util::{
    SinkExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    time::timeout,
};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use warren_proto::{
    Frame, KickBody,
    cmd::{self, kick},
    encode_body,
};

use super::{Format, Ws};
use crate::{
    registry::{ConnHandle, Exit},
    server::Shared,
    stats::Stats,
};

// Long: the write loop and the goodbye after it share the sink, the queue and the stop; an async block around them keeps the task small (see inside).
/// Drains the outbound queue into the socket, batching whatever is queued
/// into one flush, until the socket is stopped; then says goodbye. Frames
/// are written in the socket's `format`.
// Not an `async fn` on purpose: see the comment inside.
#[allow(clippy::manual_async_fn)]
pub(super) fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    handle: Arc<ConnHandle>,
    format: Format,
    shared: Arc<Shared>,
) -> impl Future<Output = SplitSink<Ws, Message>> + Send {
    // A function around an `async move` block rather than an `async fn`,
    // which would keep a second copy of its arguments in the task.
    async move {
        let close_timeout = shared.settings.close_timeout_ms;
        let queue = handle.outbox();
        let out = |frame: bytes::Bytes| {
            format.write(frame, || {
                Stats::inc(&shared.stats.not_json_frames);
            })
        };
        let stop = handle.stopped().clone();
        let mut stopped = std::pin::pin!(stop.cancelled());
        loop {
            let first = tokio::select! {
                biased;
                _ = &mut stopped => break,
                frame = queue.next() => match frame {
                    Some(frame) => frame,
                    None => break,
                },
            };
            let write = async {
                sink.feed(out(first)).await?;
                while let Some(frame) = queue.pop() {
                    sink.feed(out(frame)).await?;
                }
                sink.flush().await
            };
            // The write is polled first: `first` is already out of the queue,
            // and a stop that lands now must not drop it (a login error sent
            // just before the close, say). Only a write that cannot go on (the
            // client is not reading) is cut short by the stop; what it fed is
            // flushed with the goodbye.
            let result = tokio::select! {
                biased;
                r = write => r,
                _ = &mut stopped => break,
            };
            if result.is_err() {
                handle.stop(Exit::Gone);
                break;
            }
        }
        let exit = handle.exit();
        let goodbye = async {
            if !matches!(&exit, Exit::Kick(r) if r == kick::SLOW_CONSUMER) {
                // Frames queued before the stop (a login error, say) still go.
                while let Some(frame) = queue.pop() {
                    sink.feed(out(frame)).await?;
                }
            }
            match exit {
                Exit::Kick(reason) => {
                    let body = encode_body(&KickBody {
                        reason: reason.clone(),
                    });
                    let kick = Frame::new(0, cmd::KICK, body).encode();
                    // In a resumable session a kick is numbered too, except the
                    // `reconnect` that keeps it resumable: that one is this
                    // socket's goodbye, not part of the session.
                    let kick = match handle.session() {
                        Some(session) if reason != kick::RECONNECT => session.number_only(&kick),
                        _ => kick.into(),
                    };
                    sink.feed(out(kick)).await?;
                    sink.send(close_frame(CloseCode::Normal, &reason)).await
                }
                Exit::Close(code, reason) => sink.send(close_frame(code, reason)).await,
                Exit::Gone => sink.close().await,
            }
        };
        // Boxed: it runs once, and inline it would make the writer's task as
        // large as the goodbye's state for the socket's whole life.
        let _ = timeout(close_timeout, Box::pin(goodbye)).await;
        queue.close();
        sink
    }
}

pub(super) fn close_frame(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// After our close frame, keeps reading (and discarding) until the client
/// closes or the timeout passes, so unread bytes (the rest of an oversize
/// frame, say) do not make the kernel reset the connection and destroy the
/// close frame before the client reads it.
pub(super) async fn linger(
    stream: SplitStream<Ws>,
    sink: SplitSink<Ws, Message>,
    close_timeout: Duration,
) {
    let Ok(mut ws) = stream.reunite(sink) else {
        return;
    };
    let tcp = ws.get_mut();
    // Nothing more will be written: send FIN now, keep reading.
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 4096];
    let _ = timeout(close_timeout, async {
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
