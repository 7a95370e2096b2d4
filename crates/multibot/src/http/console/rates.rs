//! Updates per second over the last minutes, per bot and for the fleet: [`Rates::sample`] reads the handled-update
//! counters every [`STEP`] and keeps the last [`SAMPLES`] differences; [`Rates::sparkline`] draws them as an SVG
//! polyline for the fleet page. About 130 bytes a bot.

use std::{
    collections::{HashMap, VecDeque},
    fmt::Write,
    time::Duration,
};

use parking_lot::Mutex;

use crate::fleet::BotStatus;

/// How often the counters are read.
pub(super) const STEP: Duration = Duration::from_secs(10);
/// How many steps are kept: five minutes.
const SAMPLES: usize = 30;

/// One bot's history: the counter at the last reading and the updates of each step since.
#[derive(Default)]
struct History {
    last: u64,
    steps: VecDeque<u32>,
}

impl History {
    fn push(&mut self, counter: u64, first: bool) {
        // A restart of the bot does not reset its counter, but a bot that came back after removal starts over.
        let step = if first { 0 } else { counter.saturating_sub(self.last) };
        self.last = counter;
        if self.steps.len() == SAMPLES {
            self.steps.pop_front();
        }
        self.steps.push_back(u32::try_from(step).unwrap_or(u32::MAX));
    }

    fn per_second(&self) -> Vec<f64> {
        self.steps.iter().map(|&n| f64::from(n) / STEP.as_secs_f64()).collect()
    }
}

/// The histories of every bot and of the whole fleet.
#[derive(Default)]
pub(super) struct Rates {
    bots: Mutex<HashMap<String, History>>,
    fleet: Mutex<History>,
}

impl Rates {
    /// Takes one reading of `statuses`; bots no longer in the fleet are forgotten.
    pub(super) fn sample(&self, statuses: &[BotStatus]) {
        let mut bots = self.bots.lock();
        bots.retain(|id, _| statuses.iter().any(|s| s.id.as_str() == id));
        let mut total = 0u64;
        for status in statuses {
            total += status.updates_handled;
            let first = !bots.contains_key(status.id.as_str());
            bots.entry(status.id.to_string()).or_default().push(status.updates_handled, first);
        }
        let mut fleet = self.fleet.lock();
        let first = fleet.steps.is_empty() && fleet.last == 0;
        fleet.push(total, first);
    }

    /// `bot`'s updates per second, oldest first (the fleet's with `None`).
    pub(super) fn of(&self, bot: Option<&str>) -> Vec<f64> {
        match bot {
            Some(bot) => self.bots.lock().get(bot).map(History::per_second).unwrap_or_default(),
            None => self.fleet.lock().per_second(),
        }
    }
}

/// What a series shows, for the chart's label: the latest rate and the peak.
pub(super) fn summary(series: &[f64]) -> String {
    let now = series.last().copied().unwrap_or(0.0);
    let peak = series.iter().copied().fold(0.0, f64::max);
    format!("{now:.1}/s now, {peak:.1}/s at most over the last {} minutes", SAMPLES as u64 * STEP.as_secs() / 60)
}

/// The points of an SVG polyline for `series` in a `width` x `height` box, scaled to its peak.
pub(super) fn sparkline(series: &[f64], width: f64, height: f64) -> String {
    let peak = series.iter().copied().fold(0.0, f64::max).max(1e-9);
    let step = width / (SAMPLES - 1) as f64;
    let offset = SAMPLES.saturating_sub(series.len()) as f64 * step;
    let mut points = String::new();
    for (i, value) in series.iter().enumerate() {
        let y = height - 1.0 - (value / peak) * (height - 2.0);
        let _ = write!(points, "{:.1},{:.1} ", offset + i as f64 * step, y);
    }
    points.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_keeps_the_steps_of_the_last_minutes() {
        let mut history = History::default();
        history.push(500, true);
        history.push(600, false);
        history.push(600, false);
        assert_eq!(history.per_second(), vec![0.0, 10.0, 0.0]);
        for n in 0..100 {
            history.push(700 + n * 10, false);
        }
        assert_eq!(history.steps.len(), SAMPLES);
        assert_eq!(history.per_second().last(), Some(&1.0));
        assert_eq!(sparkline(&[], 120.0, 24.0), "");
        assert_eq!(sparkline(&[0.0, 2.0], 29.0, 12.0).split(' ').count(), 2);
        assert!(summary(&[1.0, 3.0, 2.0]).starts_with("2.0/s now, 3.0/s at most"));
    }
}
