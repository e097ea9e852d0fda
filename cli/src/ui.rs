//! Progress of a stack operation: one stream of events, two renderings. On a terminal, a live
//! bar with resource counts (failures are printed above it, so their reasons stay readable); when
//! stderr is not a terminal or `CI` is set, one plain line per event and a heartbeat line when
//! nothing has happened for a while, so a CI log is never silent during a long wait.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stack::events::StackEvent;

/// How long plain output may stay silent before a heartbeat line.
const HEARTBEAT: Duration = Duration::from_secs(15);

pub struct Progress {
    bar: Option<ProgressBar>,
    settled: HashSet<String>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// `total`: how many resources the operation touches, when known.
    pub fn new(total: u64) -> Progress {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = interactive.then(|| {
            let bar = ProgressBar::new(total.max(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} resources  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            settled: HashSet::new(),
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    pub fn event(&mut self, event: &StackEvent) {
        let is_resource = event.resource_type != "AWS::CloudFormation::Stack"
            || event.logical_id != event.stack_name;
        if is_resource && (event.status.ends_with("_COMPLETE") || event.status.ends_with("_FAILED"))
        {
            self.settled.insert(event.logical_id.clone());
        }
        match &self.bar {
            Some(bar) => {
                if bar
                    .length()
                    .is_some_and(|len| (self.settled.len() as u64) > len)
                {
                    bar.set_length(self.settled.len() as u64);
                }
                bar.set_position(self.settled.len() as u64);
                bar.set_message(format!("{} {}", event.status, event.logical_id));
                if event.status.ends_with("_FAILED") {
                    bar.println(event.line());
                }
            }
            None => {
                eprintln!("{}", event.line());
                self.last_line = Instant::now();
            }
        }
    }

    /// Called on every poll: in plain mode, says that the wait goes on when nothing was printed
    /// for a while.
    pub fn tick(&mut self, status: &str) {
        if self.bar.is_none() && self.last_line.elapsed() >= HEARTBEAT {
            eprintln!("... {status} ({}s)", self.started.elapsed().as_secs());
            self.last_line = Instant::now();
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress of a check made of steps (`sdp verify`, `sdp load`), on stderr: on a terminal, a
/// spinner with the running step and its latest state; otherwise one line as each step starts
/// and a heartbeat while it runs long. Each step's result is always a line of its own.
pub struct Steps {
    bar: Option<ProgressBar>,
    step: String,
    last_line: Instant,
}

impl Steps {
    pub fn new() -> Steps {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Steps {
            bar: interactive.then(|| {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }),
            step: String::new(),
            last_line: Instant::now(),
        }
    }

    pub fn start(&mut self, step: &str) {
        step.clone_into(&mut self.step);
        match &self.bar {
            Some(bar) => bar.set_message(step.to_owned()),
            None => self.line(&format!("... {step}")),
        }
    }

    /// The running step's latest state: shown live on a terminal, at most every
    /// [`HEARTBEAT`] otherwise.
    pub fn update(&mut self, state: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {state}", self.step)),
            None if self.last_line.elapsed() >= HEARTBEAT => {
                self.line(&format!("... {}: {state}", self.step));
            }
            None => {}
        }
    }

    /// The step's result.
    pub fn result(&mut self, ok: bool, text: &str) {
        let line = format!("{} {text}", if ok { "ok  " } else { "FAIL" });
        match &self.bar {
            Some(bar) => bar.println(line),
            None => self.line(&line),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&mut self, text: &str) {
        eprintln!("{text}");
        self.last_line = Instant::now();
    }
}

impl Default for Steps {
    fn default() -> Self {
        Steps::new()
    }
}
