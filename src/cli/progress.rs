//! Sync progress: an indicatif bar (files, bytes, rate) on a terminal; under cron nothing but the
//! summary lines the CLI prints at the end.

use crate::engine::{Progress, SilentProgress};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

pub fn for_terminal(tty: bool) -> Box<dyn Progress> {
    if tty {
        Box::new(Bar { state: Mutex::new(None) })
    } else {
        Box::new(SilentProgress)
    }
}

struct Bar {
    /// The bar of the mirror in progress, files done, files planned.
    state: Mutex<Option<(ProgressBar, u64, u64)>>,
}

impl Progress for Bar {
    fn mirror_started(&self, id: &str, files: u64, bytes: u64) {
        let bar = ProgressBar::new(bytes);
        let template = "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} eta {eta}";
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar.set_prefix(id.to_owned());
        bar.set_message(format!("0/{files} files"));
        *self.state.lock().expect("progress lock") = Some((bar, 0, files));
    }

    fn advance(&self, bytes: u64) {
        if let Some((bar, done, files)) = self.state.lock().expect("progress lock").as_mut() {
            *done += 1;
            bar.inc(bytes);
            bar.set_message(format!("{done}/{files} files"));
        }
    }

    fn mirror_finished(&self, _id: &str) {
        if let Some((bar, _, _)) = self.state.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
