//! The resume position every message carries: `<instance>.<seq>`, opaque to clients.
//!
//! `instance` is random per gateway process and `seq` counts the events that process has
//! routed. A cursor is only meaningful to the process that issued it: after a restart, or when
//! a load balancer sends the reconnect to another instance, the cursor is unknown there and the
//! client gets `resync` (it reloads its list over REST), never a silently incomplete replay.
//! Per-user order within one process is the order of `seq`.

use std::fmt;
use std::str::FromStr;

/// Identifies one gateway process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId(u32);

impl InstanceId {
    pub fn random() -> Self {
        Self(fastrand::u32(..))
    }

    pub const fn new(value: u32) -> Self {
        Self(value)
    }
}

/// A position in one gateway process's event sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub instance: InstanceId,
    pub seq: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{}", self.instance.0, self.seq)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("after must be a cursor this gateway sent (like 1a2b3c4d.42)")]
pub struct MalformedCursor;

impl FromStr for Cursor {
    type Err = MalformedCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (instance, seq) = s.split_once('.').ok_or(MalformedCursor)?;
        if instance.len() != 8 || seq.is_empty() || seq.len() > 20 {
            return Err(MalformedCursor);
        }
        Ok(Self {
            instance: InstanceId(u32::from_str_radix(instance, 16).map_err(|_| MalformedCursor)?),
            seq: seq.parse().map_err(|_| MalformedCursor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            instance: InstanceId::new(0x1a2b3c4d),
            seq: 42,
        };
        assert_eq!(c.to_string(), "1a2b3c4d.42");
        assert_eq!("1a2b3c4d.42".parse(), Ok(c));
        for bad in [
            "",
            "42",
            "1a2b3c4d.",
            "zzzzzzzz.1",
            "1a2b3c4d.-1",
            "1a2b.1",
            "1a2b3c4d.x",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(MalformedCursor), "{bad}");
        }
    }
}
