//! Where to step next. The rate grows geometrically (×4) until a step fails, then the gap
//! between the last good and the first bad rate is halved in log space (the geometric mean of
//! the two) until bad / good is within the tolerance; the last good rate is the knee. Halving in
//! log space takes as many steps for a gap from 100 to 400 as from 10,000 to 40,000.

/// What the search asks for next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// Run a step at this rate.
    Step(f64),
    /// Done: the highest rate that passed (`None`: even the lowest failed).
    Found(Option<f64>),
}

#[derive(Clone, Debug)]
pub struct Search {
    from: f64,
    to: f64,
    tolerance: f64,
    growth: f64,
    good: Option<f64>,
    bad: Option<f64>,
    next: Option<f64>,
}

impl Search {
    /// `from` and `to` bound the rates tried; `tolerance` is the largest bad/good − 1 to stop at.
    pub fn new(from: f64, to: f64, tolerance: f64) -> Search {
        Search {
            from,
            to,
            tolerance,
            growth: 4.0,
            good: None,
            bad: None,
            next: Some(from),
        }
    }

    pub fn next(&self) -> Next {
        match self.next {
            Some(rate) => Next::Step(rate),
            None => Next::Found(self.good),
        }
    }

    /// Records a step's outcome and decides the next rate.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.good = Some(self.good.map_or(rate, |g| g.max(rate)));
        } else {
            self.bad = Some(self.bad.map_or(rate, |b| b.min(rate)));
        }
        self.next = match (self.good, self.bad) {
            // Even the first rate failed: nothing lower to try.
            (None, Some(_)) => None,
            (Some(good), None) if good >= self.to => None,
            (Some(good), None) => Some((good * self.growth).min(self.to)),
            (Some(good), Some(bad)) if bad / good - 1.0 <= self.tolerance => None,
            (Some(good), Some(bad)) => Some((good * bad).sqrt()),
            (None, None) => Some(self.from),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a target whose knee is exactly `knee`: (found, steps).
    fn against(knee: f64, from: f64, to: f64) -> (Option<f64>, usize) {
        let mut search = Search::new(from, to, 0.05);
        let mut steps = 0;
        loop {
            match search.next() {
                Next::Step(rate) => {
                    steps += 1;
                    search.record(rate, rate <= knee);
                }
                Next::Found(found) => return (found, steps),
            }
        }
    }

    #[test]
    fn finds_knees_within_the_tolerance_in_few_steps() {
        // From 10/s: knees up to ~10,000/s in 12 steps, one more per factor of 4 beyond.
        for (knee, most) in [
            (37.0, 12),
            (200.0, 12),
            (2_000.0, 12),
            (9_000.0, 12),
            (47_000.0, 13),
        ] {
            let (found, steps) = against(knee, 10.0, 100_000.0);
            let found = found.unwrap();
            assert!(found <= knee && found >= knee / 1.05, "{knee}: {found}");
            assert!(steps <= most, "{knee}: {steps} steps");
        }
    }

    #[test]
    fn a_target_good_to_the_top_or_bad_from_the_start() {
        assert_eq!(against(1e9, 10.0, 1_000.0).0, Some(1_000.0));
        assert_eq!(against(5.0, 10.0, 1_000.0), (None, 1));
    }
}
