//! What the supervisor sends the namespace helper: a set of files (owners already resolved on
//! the host, as ids) and its bytes; and how the helper's start is described on its argv.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::Layout;
use crate::materialize::{Checked, Destination, Status};
use crate::namespace::channel::{self, SET_END, SET_FILE, SET_HEADER};
use crate::render::Rendered;

/// The helper's start, as one argument (no value in it: paths, ids, names).
#[derive(Debug, Serialize, Deserialize)]
pub struct Start {
    /// The supervisor's pid (the helper's parent, and its socket's owner).
    pub parent: u32,
    pub socket: String,
    pub root: PathBuf,
    /// `Some`: unprivileged, map these ids into a user namespace.
    pub userns: Option<(u32, u32)>,
    /// Who the command runs as (`None`: the helper's own user).
    pub user: Option<(String, u32, u32)>,
    pub umask: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    generation: bool,
    app: String,
    env: String,
    dir_mode: u32,
    dir_gid: u32,
    files: Vec<WireFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireFile {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A set as the helper receives it.
pub struct Set {
    pub checked: Checked,
    pub rendered: Vec<Rendered>,
}

impl Set {
    pub fn bytes(&self) -> u64 {
        self.rendered.iter().map(|r| r.bytes.len() as u64).sum()
    }
}

/// Sends `checked`'s destinations and `rendered` (same order).
pub fn send_set(w: &mut impl Write, checked: &Checked, rendered: &[Rendered]) -> io::Result<()> {
    let header = Header {
        generation: checked.layout == Layout::Generation,
        app: checked.app.clone(),
        env: checked.env.clone(),
        dir_mode: checked.dir_mode,
        dir_gid: checked.dir_gid,
        files: checked
            .files
            .iter()
            .map(|d| WireFile {
                path: d.path.clone(),
                mode: d.mode,
                uid: d.uid,
                gid: d.gid,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&header).map_err(io::Error::other)?;
    channel::write_frame(w, SET_HEADER, &json)?;
    for r in rendered {
        channel::write_frame(w, SET_FILE, &r.bytes)?;
    }
    channel::write_frame(w, SET_END, &[])?;
    w.flush()
}

/// The rest of a set whose header frame was `header`.
/// `root`: the private root; `unmapped`: in a user namespace, the uid its ancestors show as.
pub fn read_set(
    r: &mut impl Read,
    header: &[u8],
    root: &Path,
    unmapped: Option<u32>,
) -> io::Result<Set> {
    let header: Header = serde_json::from_slice(header).map_err(io::Error::other)?;
    let mut rendered = Vec::with_capacity(header.files.len());
    loop {
        match channel::read_frame(r)? {
            Some((SET_FILE, bytes)) => rendered.push(Rendered {
                bytes,
                sources: Vec::new(),
            }),
            Some((SET_END, _)) => break,
            _ => return Err(io::Error::other("a set ended early")),
        }
    }
    if rendered.len() != header.files.len() {
        return Err(io::Error::other("a set's files do not match its header"));
    }
    let files = header
        .files
        .into_iter()
        .map(|f| Destination {
            path: f.path,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        })
        .collect();
    let layout = if header.generation {
        Layout::Generation
    } else {
        Layout::Files
    };
    Ok(Set {
        checked: crate::materialize::private_root(
            root.to_path_buf(),
            unmapped,
            crate::materialize::SetShape {
                layout,
                app: header.app,
                env: header.env,
                dir_mode: header.dir_mode,
                dir_gid: header.dir_gid,
            },
            files,
        ),
        rendered,
    })
}

/// A file's status in the helper's `applied` event (the audit line's words).
pub fn status_word(status: Status) -> &'static str {
    match status {
        Status::Created => "created",
        Status::Updated => "updated",
        Status::Unchanged => "unchanged",
        Status::Removed => "removed",
    }
}

/// [`status_word`] read back; an unknown word is none.
pub fn status_of(word: &str) -> Option<Status> {
    [
        Status::Created,
        Status::Updated,
        Status::Unchanged,
        Status::Removed,
    ]
    .into_iter()
    .find(|s| status_word(*s) == word)
}
