//! [`RateLimit`]: a request budget, and its text form.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use super::LimitError;

/// Most requests a budget may allow per period.
const MAX_REQUESTS: u32 = 1_000_000;
/// Longest period: a day.
const MAX_PERIOD: Duration = Duration::from_secs(86_400);

/// A request budget: `requests` per `period`, of which up to `burst` may
/// come at once. Enforced with GCRA: over any window of length `W`, at most
/// `burst + requests × W / period` requests are accepted.
///
/// Its text form, for configuration files, command lines and forms, is
/// `600/min`, `10/s`, `5000/h`, `20000/day` or `90/30s`, optionally followed
/// by ` burst N` (`600/min burst 100`). The burst defaults to `requests`.
///
/// ```
/// use std::time::Duration;
/// use tower_pat::limit::RateLimit;
///
/// let limit: RateLimit = "600/min burst 100".parse().unwrap();
/// assert_eq!(limit.requests(), 600);
/// assert_eq!(limit.period(), Duration::from_secs(60));
/// assert_eq!(limit.burst(), 100);
/// assert_eq!(limit.to_string(), "600/min burst 100");
/// assert_eq!(RateLimit::new(600, Duration::from_secs(60)).unwrap().to_string(), "600/min");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    requests: NonZeroU32,
    period_secs: NonZeroU32,
    burst: NonZeroU32,
}

impl RateLimit {
    /// `requests` per `period`, with a burst of `requests`. `requests` is 1
    /// to 1,000,000 and `period` whole seconds from 1 s to a day.
    pub fn new(requests: u32, period: Duration) -> Result<Self, LimitError> {
        let requests = NonZeroU32::new(requests)
            .filter(|r| r.get() <= MAX_REQUESTS)
            .ok_or(LimitError::Rate("the request count must be 1 to 1000000"))?;
        if period.subsec_nanos() != 0 || period > MAX_PERIOD {
            return Err(LimitError::Rate(
                "the period must be whole seconds, at most a day",
            ));
        }
        let period_secs = NonZeroU32::new(period.as_secs() as u32).ok_or(LimitError::Rate(
            "the period must be whole seconds, at most a day",
        ))?;
        Ok(Self {
            requests,
            period_secs,
            burst: requests,
        })
    }

    /// The same budget with at most `burst` requests at once (1 to
    /// `requests`).
    pub fn with_burst(self, burst: u32) -> Result<Self, LimitError> {
        let burst = NonZeroU32::new(burst)
            .filter(|b| *b <= self.requests)
            .ok_or(LimitError::Rate("the burst must be 1 to the request count"))?;
        Ok(Self { burst, ..self })
    }

    /// Requests per period.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_secs(u64::from(self.period_secs.get()))
    }

    /// Most requests accepted at once.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// This budget shared by `instances` that cannot coordinate: each gets
    /// its share of the requests and of the burst, rounded down but at
    /// least one (never unlimited). What a shared limiter falls back on
    /// while its server is unreachable.
    pub fn divided_among(self, instances: NonZeroU32) -> Self {
        let part =
            |n: NonZeroU32| NonZeroU32::new(n.get() / instances.get()).unwrap_or(NonZeroU32::MIN);
        Self {
            requests: part(self.requests),
            burst: part(self.burst),
            ..self
        }
    }

    /// Nanoseconds between two requests at the sustained rate (rounded up,
    /// so the bound holds), and the burst tolerance in nanoseconds.
    pub(crate) fn gcra_nanos(&self) -> (u64, u64) {
        let period = u64::from(self.period_secs.get()) * 1_000_000_000;
        let interval = period.div_ceil(u64::from(self.requests.get()));
        (interval, interval * u64::from(self.burst.get()))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs.get() {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "h".to_owned(),
            86_400 => "day".to_owned(),
            n => format!("{n}s"),
        };
        write!(f, "{}/{unit}", self.requests)?;
        if self.burst != self.requests {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimit({self})")
    }
}

impl FromStr for RateLimit {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, LimitError> {
        const SYNTAX: LimitError =
            LimitError::Rate("write a budget as 600/min, 10/s, 5000/h, 20000/day or 90/30s, optionally with \" burst N\"");
        let mut words = s.split_whitespace();
        let budget = words.next().ok_or(SYNTAX)?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(n), None) => Some(n.parse::<u32>().map_err(|_| SYNTAX)?),
            _ => return Err(SYNTAX),
        };
        let (count, unit) = budget.split_once('/').ok_or(SYNTAX)?;
        let count = count.parse::<u32>().map_err(|_| SYNTAX)?;
        let secs = match unit {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "day" | "d" => 86_400,
            other => {
                let n = other.strip_suffix('s').ok_or(SYNTAX)?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SYNTAX);
                }
                n.parse::<u64>().map_err(|_| SYNTAX)?
            }
        };
        let limit = Self::new(count, Duration::from_secs(secs))?;
        match burst {
            Some(b) => limit.with_burst(b),
            None => Ok(limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for text in [
            "600/min",
            "10/s",
            "5000/h",
            "20000/day",
            "90/30s",
            "600/min burst 100",
            "1/s",
        ] {
            let limit: RateLimit = text.parse().unwrap();
            assert_eq!(limit.to_string(), text);
        }
        assert_eq!(
            "600/minute".parse::<RateLimit>().unwrap().to_string(),
            "600/min"
        );
        assert_eq!("60/60s".parse::<RateLimit>().unwrap().to_string(), "60/min");
    }

    #[test]
    fn nonsense_is_refused() {
        for text in [
            "",
            "600",
            "/min",
            "0/min",
            "600/",
            "600/week",
            "600/0s",
            "600/-5s",
            "600/86401s",
            "1000001/s",
            "600/min burst",
            "600/min burst 0",
            "600/min burst 601",
            "600/min flurry 5",
            "600/min burst 5 extra",
            "-1/s",
            "600 /min",
            "600/1.5s",
            "600/s s",
        ] {
            assert!(text.parse::<RateLimit>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn shares_round_down_but_never_to_zero() {
        let limit: RateLimit = "10/s burst 6".parse().unwrap();
        let four = limit.divided_among(NonZeroU32::new(4).unwrap());
        assert_eq!((four.requests(), four.burst()), (2, 1));
        let many = limit.divided_among(NonZeroU32::new(100).unwrap());
        assert_eq!((many.requests(), many.burst()), (1, 1));
    }
}
