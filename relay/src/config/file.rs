//! Reading the `--config` file, at start and at each SIGHUP, bounded in size and in time.
//!
//! * Size: at most [`MAX_FILE_BYTES`]. The length the file reports is checked first, and the
//!   read itself stops one byte past the limit, so a file that grows while it is read (or
//!   reports no length) cannot make the relay hold more.
//! * Time: only a regular file is read. A read of a regular file never waits for a writer;
//!   a FIFO, a terminal or a socket can wait forever, and a device can give bytes forever
//!   (`/dev/zero`, `/dev/urandom`), so those are refused. The open is non-blocking, so even
//!   opening a FIFO (which waits for a writer) returns at once, and the kind of file is taken
//!   from the open descriptor, not from the path, so it cannot change in between. (A file on a
//!   network filesystem that stops answering can still stall a read; that is the mount's
//!   business, as for every other file the relay's host reads.)

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::bounds::MAX_FILE_BYTES;
use super::size::format_size;
use super::ConfigError;

/// The text of the file at `path`, or why it cannot be the configuration.
pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    let io_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let refuse = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    // O_NOCTTY: a terminal named by mistake must not become our controlling terminal.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if let Some(kind) = not_regular(&meta) {
        return Err(refuse(format!("it is {kind}, not a regular file")));
    }
    let too_large = || refuse(format!("larger than {}", format_size(MAX_FILE_BYTES)));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let bytes = read_at_most(file, MAX_FILE_BYTES)
        .map_err(io_error)?
        .ok_or_else(too_large)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        refuse(format!("not UTF-8 text: invalid byte at offset {at}"))
    })
}

/// All of `reader` if it holds at most `limit` bytes; `None` once it has given one more,
/// however much more it could give.
pub(super) fn read_at_most(reader: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// What the file is, when it is not a regular file.
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a special file")
    }
}
