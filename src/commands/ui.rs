//! Apply progress: spinners on a terminal, one line per event otherwise (CI logs).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::apply::{Outcome, Progress};
use crate::plan::{Action, ResourceChange};

pub struct Ui {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Ui {
    pub fn new() -> Ui {
        use std::io::IsTerminal;
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        Ui { multi, bars: Mutex::new(HashMap::new()) }
    }

    fn line(&self, address: &str, text: String) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(address));
        match bar {
            Some(bar) => bar.finish_with_message(text),
            None => eprintln!("{text}"),
        }
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Adopt => "adopting",
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "deleting",
        Action::NoOp => "checking",
    }
}

impl Progress for Ui {
    fn started(&self, change: &ResourceChange) {
        let text = format!("{}: {}…", change.address, verb(change.action));
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(text);
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(change.address.clone(), bar);
                }
            }
            None => eprintln!("{text}"),
        }
    }

    fn finished(&self, o: &Outcome) {
        self.line(&o.address, format!("✓ {}: {} ({:.1}s)", o.address, o.message, o.seconds));
    }

    fn failed(&self, address: &str, error: &str) {
        self.line(address, format!("✗ {address}: {error}"));
    }
}
