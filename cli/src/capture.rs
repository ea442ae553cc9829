//! `--pcap`: every frame crossing the link, both directions, into a pcap file.
//!
//! Frames go through a buffer; the [`Capture`] flushes it when the command ends, on
//! every way out (a lease, a timeout, an error, SIGINT or SIGTERM), and when dropped,
//! so the file is complete exactly when someone needs it to see why a lease failed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use pcap_file::pcap::{PcapPacket, PcapWriter};
use tapemu::driver::{Direction, FrameHook};

type Writer = PcapWriter<BufWriter<File>>;

/// An open capture file. The frame hook that fills it goes to the driver; this half
/// finishes the file.
#[derive(Debug)]
pub struct Capture {
    writer: Arc<Mutex<Option<Writer>>>,
    path: String,
}

impl Capture {
    /// Creates `path` (writing the pcap header) and the hook that appends each frame.
    pub fn create(path: &Path) -> Result<(Capture, FrameHook), String> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| format!("pcap {name}: {e}"))?;
        let writer =
            PcapWriter::new(BufWriter::new(file)).map_err(|e| format!("pcap {name}: {e}"))?;
        let writer = Arc::new(Mutex::new(Some(writer)));
        let shared = writer.clone();
        let hook: FrameHook = Box::new(move |_dir: Direction, frame: &[u8]| {
            let ts = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            let mut writer = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(w) = writer.as_mut() {
                let _ = w.write_packet(&PcapPacket::new(ts, len, frame));
            }
        });
        Ok((Capture { writer, path: name }, hook))
    }

    /// Writes out what is buffered and closes the file; frames the driver still
    /// hands over afterwards are not written.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("pcap {}: {e}", self.path);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match writer {
            Some(w) => w.into_writer().flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.close();
    }
}
