//! The wire: LSP's base protocol (`Content-Length` framed JSON-RPC) on a
//! reader thread and a writer thread.
//!
//! This module owns recovery from bad input, which lsp-server's own stdio
//! reader does not attempt (it stops at the first bad message): a frame whose
//! body is not JSON, or not a JSON-RPC message, is answered with an error and
//! skipped; a bad header line is skipped until the next frame; a body larger
//! than [`MAX_BODY`] is read past and refused. Only the end of the input stops
//! the reader. It knows nothing of the methods the server answers.

use lsp_server::{ErrorCode, Message, RequestId};
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{Receiver, Sender, channel as unbounded};

/// The largest message body accepted (a buffer of a few megabytes is a big
/// program; anything larger is an error, not an allocation).
pub const MAX_BODY: usize = 64 << 20;
/// The longest header line read before it is judged malformed.
const MAX_HEADER_LINE: u64 = 8 << 10;

/// What the reader passes on.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// A frame that held no message: answer it with this error (`id` when
    /// the body named one) and go on.
    Invalid {
        id: Option<RequestId>,
        code: i32,
        message: String,
    },
}

/// One framed body, or why there is none.
enum Frame {
    Body(Vec<u8>),
    Bad(String),
    End,
}

/// Reads one frame. Header names are case-insensitive; a line ending in a
/// bare `\n` is accepted.
fn read_frame(r: &mut impl BufRead) -> io::Result<Frame> {
    let mut length: Option<usize> = None;
    let mut seen_header = false;
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take(MAX_HEADER_LINE).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(Frame::End);
        }
        if line.last() != Some(&b'\n') {
            // Too long or cut short: skip to the line's end.
            if n as u64 >= MAX_HEADER_LINE {
                let mut rest = Vec::new();
                r.read_until(b'\n', &mut rest)?;
            }
            return Ok(Frame::Bad("malformed header line".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if !seen_header {
                continue;
            }
            break;
        }
        seen_header = true;
        let Some((name, value)) = text.split_once(':') else {
            return Ok(Frame::Bad(format!("malformed header `{}`", text.chars().take(80).collect::<String>())));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<usize>() {
                Ok(v) => length = Some(v),
                Err(_) => return Ok(Frame::Bad("Content-Length is not a number".into())),
            }
        }
    }
    let Some(length) = length else { return Ok(Frame::Bad("no Content-Length header".into())) };
    if length > MAX_BODY {
        io::copy(&mut r.by_ref().take(length as u64), &mut io::sink())?;
        return Ok(Frame::Bad(format!("a message of {length} bytes is larger than {MAX_BODY}")));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok(Frame::Body(body))
}

/// The message in a body, or the error to answer it with.
pub fn decode(body: &[u8]) -> Incoming {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid {
                id: None,
                code: ErrorCode::ParseError as i32,
                message: format!("parse error: {e}"),
            };
        }
    };
    let id = match value.get("id") {
        Some(serde_json::Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()).map(RequestId::from),
        Some(serde_json::Value::String(s)) => Some(RequestId::from(s.clone())),
        _ => None,
    };
    match serde_json::from_value::<Message>(value) {
        Ok(m) => Incoming::Message(m),
        Err(e) => {
            Incoming::Invalid { id, code: ErrorCode::InvalidRequest as i32, message: format!("invalid request: {e}") }
        }
    }
}

/// Reads frames until the input ends, sending each message on.
pub fn reader(input: impl Read + Send + 'static) -> Receiver<Incoming> {
    let (tx, rx) = unbounded();
    std::thread::spawn(move || {
        let mut input = io::BufReader::new(input);
        loop {
            let incoming = match read_frame(&mut input) {
                Ok(Frame::Body(body)) => decode(&body),
                Ok(Frame::Bad(why)) => Incoming::Invalid { id: None, code: ErrorCode::ParseError as i32, message: why },
                Ok(Frame::End) | Err(_) => break,
            };
            let exit = matches!(&incoming, Incoming::Message(Message::Notification(n)) if n.method == "exit");
            if tx.send(incoming).is_err() || exit {
                break;
            }
        }
    });
    rx
}

/// Writes each body it is sent as one frame, flushing after each; ends
/// when every sender is gone. Join the handle to be sure all is written.
pub fn writer(output: impl Write + Send + 'static) -> (Sender<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = unbounded::<String>();
    let handle = std::thread::spawn(move || {
        let mut out = io::BufWriter::new(output);
        for body in rx {
            let frame = write!(out, "Content-Length: {}\r\n\r\n", body.len())
                .and_then(|()| out.write_all(body.as_bytes()))
                .and_then(|()| out.flush());
            if frame.is_err() {
                break;
            }
        }
    });
    (tx, handle)
}

/// The body of a message, with the protocol's version.
pub fn encode(message: &Message) -> String {
    let mut value = serde_json::to_value(message).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("jsonrpc".into(), "2.0".into());
    }
    value.to_string()
}

/// An error response to a message that had no usable id (`"id": null`).
pub fn error_without_id(code: i32, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<String> {
        let mut r = io::Cursor::new(input.as_bytes().to_vec());
        let mut out = Vec::new();
        loop {
            match read_frame(&mut r).unwrap() {
                Frame::Body(b) => out.push(String::from_utf8(b).unwrap()),
                Frame::Bad(w) => out.push(format!("bad: {w}")),
                Frame::End => return out,
            }
        }
    }

    #[test]
    fn frames_recover_after_bad_headers() {
        let input = "Content-Length: 2\r\n\r\n{}garbage\r\nContent-Length: 3\r\n\r\n[1]Content-Length: x\r\n\r\n\
                     content-length: 4\n\n1234";
        assert_eq!(
            frames(input),
            ["{}", "bad: malformed header `garbage`", "[1]", "bad: Content-Length is not a number", "1234"]
        );
    }

    #[test]
    fn huge_lengths_are_refused_without_allocating() {
        let input = format!("Content-Length: {}\r\n\r\n{{}}", usize::MAX);
        assert_eq!(frames(&input).len(), 1);
        assert!(frames(&input)[0].starts_with("bad: a message of"));
    }

    #[test]
    fn bodies_that_are_not_messages_name_their_id() {
        assert!(matches!(decode(b"{"), Incoming::Invalid { id: None, .. }));
        assert!(matches!(decode(br#"{"id": 7, "method": 3}"#), Incoming::Invalid { id: Some(_), .. }));
        assert!(matches!(decode(br#"{"id": 7, "method": "x"}"#), Incoming::Message(Message::Request(_))));
    }
}
