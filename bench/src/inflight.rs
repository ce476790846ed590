//! The send window: unsettled sends awaiting their disposition, the oldest awaited once
//! the window is full, with the publish → disposition latency of each.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::{histogram, record};

/// Sends in flight; each future resolves to whether the broker accepted the message.
pub struct Inflight<F> {
    sends: VecDeque<(Instant, F)>,
    window: usize,
    stall: Duration,
    pub latency: Histogram<u64>,
    pub not_accepted: u64,
}

impl<F: Future<Output = Result<bool>>> Inflight<F> {
    pub fn new(window: usize, stall: Duration) -> Self {
        let window = window.max(1);
        Inflight {
            sends: VecDeque::with_capacity(window),
            window,
            stall,
            latency: histogram(),
            not_accepted: 0,
        }
    }

    /// Waits for the oldest send while the window is full.
    pub async fn make_room(&mut self) -> Result<()> {
        while self.sends.len() >= self.window {
            self.await_oldest().await?;
        }
        Ok(())
    }

    pub fn push(&mut self, sent: Instant, send: F) {
        self.sends.push_back((sent, send));
    }

    /// Waits for every send still in flight.
    pub async fn finish(&mut self) -> Result<()> {
        while !self.sends.is_empty() {
            self.await_oldest().await?;
        }
        Ok(())
    }

    async fn await_oldest(&mut self) -> Result<()> {
        if let Some((sent, send)) = self.sends.pop_front() {
            let accepted = tokio::time::timeout(self.stall, send)
                .await
                .context("no disposition within the stall limit")??;
            record(&mut self.latency, sent.elapsed().as_micros() as u64);
            if !accepted {
                self.not_accepted += 1;
            }
        }
        Ok(())
    }
}
