//! The one channel between `credfile run` and its namespace helper: a Unix socket in the
//! abstract namespace under a random name, accepted only from the helper's pid (and the helper
//! talks only to its parent's), so no descriptor number has to be passed down and no file is
//! created anywhere. Down: frames of bytes (a set of files, a signal to forward); up: one JSON
//! event per line.

use std::io::{self, BufRead, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::Child;
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use zeroize::Zeroizing;

/// Frame tags, helper-bound.
pub const SET_HEADER: u8 = b'H';
pub const SET_FILE: u8 = b'F';
pub const SET_END: u8 = b'E';
pub const SIGNAL: u8 = b'S';

/// The largest frame accepted: one file of the largest set, and then some.
const MAX_FRAME: u64 = super::MAX_SET_BYTES + (1 << 20);

pub struct Listener {
    listener: UnixListener,
    pub name: String,
}

impl Listener {
    pub fn new() -> io::Result<Listener> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("credfile-run-{hex}");
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        listener.set_nonblocking(true)?;
        Ok(Listener { listener, name })
    }

    /// The helper's connection: any other peer is dropped. `Err` when the helper ended first.
    pub fn accept_from(&self, child: &mut Child) -> io::Result<UnixStream> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let peer = getsockopt(&stream, PeerCredentials)?;
                    if u32::try_from(peer.pid()).ok() == Some(child.id()) {
                        stream.set_nonblocking(false)?;
                        return Ok(stream);
                    }
                    tracing::warn!(
                        pid = peer.pid(),
                        "ignoring a connection that is not credfile's helper"
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(status) = child.try_wait()? {
                        return Err(io::Error::other(format!(
                            "the namespace helper ended before it connected ({status})"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The helper's side: connects to `name` and checks that the listener is its parent.
pub fn connect(name: &str, parent: u32) -> io::Result<UnixStream> {
    let stream = UnixStream::connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    let peer = getsockopt(&stream, PeerCredentials)?;
    if u32::try_from(peer.pid()).ok() != Some(parent) {
        return Err(io::Error::other(
            "the socket does not belong to credfile's parent process",
        ));
    }
    Ok(stream)
}

pub fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    w.write_all(&[tag])?;
    w.write_all(&(payload.len() as u64).to_le_bytes())?;
    w.write_all(payload)
}

/// The next frame, `None` at the end of the stream. The payload is wiped when dropped.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Zeroizing<Vec<u8>>)>> {
    let mut head = [0u8; 9];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        return Err(io::Error::other(format!(
            "a frame of {len} bytes is too large"
        )));
    }
    let mut payload = Zeroizing::new(vec![0u8; usize::try_from(len).unwrap_or(0)]);
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// One event, up.
pub fn send_event(w: &mut impl Write, event: &serde_json::Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// The next event, `None` at the end of the stream.
pub fn read_event(r: &mut impl BufRead) -> io::Result<Option<serde_json::Value>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(io::Error::other)
}
