//! In-process log capture: a global tracing subscriber at debug level (text and JSON layers, so
//! both output formats are scanned) writing into a shared buffer. The emulators' own logs
//! (target `testbed`) are left out: the scan is about what the operator prints.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Clone, Default)]
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    pub fn len(&self) -> usize {
        self.buf.lock().unwrap().len()
    }

    /// Captured text from byte offset `from` (e.g. `len()` before a scenario phase).
    pub fn since(&self, from: usize) -> String {
        let b = self.buf.lock().unwrap();
        String::from_utf8_lossy(&b[from.min(b.len())..]).into_owned()
    }
}

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut b = self.0.lock().unwrap();
        // Bound memory: keep the scan useful without growing without limit (64 MiB).
        if b.len() < 64 << 20 {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.buf.clone())
    }
}

static CAPTURE: OnceLock<LogCapture> = OnceLock::new();

/// Install the capturing subscriber (once per test process) and return the buffer.
pub fn install() -> LogCapture {
    CAPTURE
        .get_or_init(|| {
            let cap = LogCapture::default();
            // debug everywhere (the operator, kube-runtime, kube-client, reqwest), except the
            // emulators and the byte-level HTTP/TLS internals.
            let filter = || {
                EnvFilter::new("debug,testbed=off,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info,axum=info")
            };
            let text = fmt::layer().with_ansi(false).with_writer(cap.clone()).with_filter(filter());
            let json = fmt::layer().json().flatten_event(true).with_writer(cap.clone()).with_filter(filter());
            let _ = tracing_subscriber::registry().with(text).with(json).try_init();
            cap
        })
        .clone()
}
