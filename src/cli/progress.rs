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

/// One bar for the run: the entries in progress (up to `sync::PARALLEL_JOBS` at once) share it.
struct Bar {
    state: Mutex<Option<Shared>>,
}

struct Shared {
    bar: ProgressBar,
    running: Vec<String>,
    done: u64,
    files: u64,
}

impl Shared {
    fn show(&self) {
        self.bar.set_prefix(self.running.join(" "));
        self.bar.set_message(format!("{}/{} files", self.done, self.files));
    }
}

impl Progress for Bar {
    fn mirror_started(&self, id: &str, files: u64, bytes: u64) {
        let mut state = self.state.lock().expect("progress lock");
        let shared = state.get_or_insert_with(|| {
            let bar = ProgressBar::new(0);
            let template = "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} eta {eta}";
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            Shared { bar, running: Vec::new(), done: 0, files: 0 }
        });
        shared.bar.inc_length(bytes);
        shared.files += files;
        shared.running.push(id.to_owned());
        shared.show();
    }

    fn advance(&self, bytes: u64) {
        if let Some(shared) = self.state.lock().expect("progress lock").as_mut() {
            shared.done += 1;
            shared.bar.inc(bytes);
            shared.show();
        }
    }

    fn mirror_finished(&self, id: &str) {
        let mut state = self.state.lock().expect("progress lock");
        if let Some(shared) = state.as_mut() {
            shared.running.retain(|r| r != id);
            shared.show();
            if shared.running.is_empty() {
                shared.bar.finish_and_clear();
                *state = None;
            }
        }
    }
}
