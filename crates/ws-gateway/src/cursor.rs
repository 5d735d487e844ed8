//! The resume position every message carries: a Kafka position, the same on every instance.
//!
//! A gateway follows a fixed list of partitions (the [`Layout`]: each topic of its catalogue
//! entry, each partition, in order). A [`Position`] holds, per partition, the offset of the
//! next message: the client that holds it has been sent every message of its user from before
//! that offset, and nothing from at or after it. Every instance reads every partition, so a
//! position means the same on all of them: a reconnect may land on any instance (or on one
//! started since), which replays what comes after it — from its buffer, or read back from
//! Kafka — or answers `resync` when that is no longer possible.
//!
//! On the wire: URL-safe base64 (no padding) of a layout tag byte, then each partition's
//! offset as an unsigned LEB128 varint (about 100 characters for 24 partitions). The tag
//! changes when the layout does (a topic added), so an old cursor gets `resync` rather than
//! being read against the wrong partitions.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use events::Topic;
use integer_encoding::VarInt;

/// The partitions a gateway follows, in cursor order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    slots: Vec<(Topic, i32)>,
    index: HashMap<(Topic, i32), usize>,
    tag: u8,
}

impl Layout {
    /// Every partition of `topics`, by the catalogue's partition counts.
    pub fn of(topics: &[Topic]) -> Self {
        let slots: Vec<(Topic, i32)> = topics
            .iter()
            .flat_map(|t| (0..t.spec().partitions).map(move |p| (*t, p)))
            .collect();
        let index = slots.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        // FNV-1a over the names and counts: any change of topics or partitions changes it.
        let mut hash: u32 = 0x811c_9dc5;
        for (topic, partition) in &slots {
            for b in topic.name().bytes().chain(partition.to_le_bytes()) {
                hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        }
        Self {
            slots,
            index,
            tag: hash.to_le_bytes().iter().fold(0, |a, b| a ^ b),
        }
    }

    /// The slot of a partition, if the layout has it.
    pub fn slot(&self, topic: Topic, partition: i32) -> Option<usize> {
        self.index.get(&(topic, partition)).copied()
    }

    pub fn slots(&self) -> &[(Topic, i32)] {
        &self.slots
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The position before any message of any partition.
    pub fn origin(&self) -> Position {
        Position(vec![0; self.len()])
    }

    /// The text form of `position`.
    pub fn encode(&self, position: &Position) -> String {
        let mut bytes = Vec::with_capacity(1 + 4 * position.0.len());
        bytes.push(self.tag);
        let mut buf = [0u8; 10];
        for offset in &position.0 {
            let n = offset.max(&0).unsigned_abs().encode_var(&mut buf);
            bytes.extend_from_slice(&buf[..n]);
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor this layout's gateways issued.
    pub fn parse(&self, text: &str) -> Result<Position, MalformedCursor> {
        // 1 tag byte and at most 10 bytes per offset, in base64.
        if text.len() > 4 + (1 + 10 * self.len()) * 4 / 3 {
            return Err(MalformedCursor::Garbled);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| MalformedCursor::Garbled)?;
        let (&tag, mut rest) = bytes.split_first().ok_or(MalformedCursor::Garbled)?;
        if tag != self.tag {
            return Err(MalformedCursor::OtherLayout);
        }
        let mut offsets = Vec::with_capacity(self.len());
        while !rest.is_empty() {
            let (value, n) = u64::decode_var(rest).ok_or(MalformedCursor::Garbled)?;
            offsets.push(i64::try_from(value).map_err(|_| MalformedCursor::Garbled)?);
            rest = &rest[n..];
        }
        if offsets.len() != self.len() {
            return Err(MalformedCursor::OtherLayout);
        }
        Ok(Position(offsets))
    }
}

/// Per slot of a [`Layout`], the offset of the next message: everything before it is
/// accounted for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position(Vec<i64>);

impl Position {
    pub fn from_offsets(offsets: Vec<i64>) -> Self {
        Self(offsets)
    }

    pub fn get(&self, slot: usize) -> i64 {
        self.0.get(slot).copied().unwrap_or(0)
    }

    /// Move slot `slot` to `next` if that is forward.
    pub fn advance(&mut self, slot: usize, next: i64) {
        if let Some(o) = self.0.get_mut(slot) {
            *o = (*o).max(next);
        }
    }

    /// Move slot `slot` back to `offset` if that is behind.
    pub fn lower(&mut self, slot: usize, offset: i64) {
        if let Some(o) = self.0.get_mut(slot) {
            *o = (*o).min(offset);
        }
    }

    /// Every slot at least as far as in `other`.
    pub fn join(&mut self, other: &Position) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }

    /// `self` joined with `other`, as a new position.
    pub fn joined(&self, other: &Position) -> Position {
        let mut p = self.clone();
        p.join(other);
        p
    }

    /// Whether every slot is at least as far as in `other`.
    pub fn covers(&self, other: &Position) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a >= b)
    }

    /// `(slot, offset)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.0.iter().copied().enumerate()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedCursor {
    #[error("after must be a cursor the gateway sent (the `cursor` of a message)")]
    Garbled,
    #[error("the cursor is from a gateway following other topics; reload and reconnect without it")]
    OtherLayout,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::of(&[Topic::TaskCreated, Topic::TaskUpdated])
    }

    #[test]
    fn positions_round_trip_compactly() {
        let l = layout();
        assert_eq!(l.len(), 6);
        let p = Position::from_offsets(vec![0, 1, 127, 128, 1_234_567, i64::MAX]);
        let text = l.encode(&p);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert_eq!(l.parse(&text), Ok(p));
        let typical = Position::from_offsets(vec![250_000; 6]);
        // 1 tag byte + 6 three-byte varints = 19 bytes, 26 characters of base64.
        assert_eq!(l.encode(&typical).len(), 26, "{}", l.encode(&typical));
    }

    #[test]
    fn garbage_and_other_layouts_are_refused() {
        let l = layout();
        for bad in ["", "!!", "42", "AAAA", &"A".repeat(500)] {
            assert!(l.parse(bad).is_err(), "{bad}");
        }
        let other = Layout::of(&[Topic::TaskCreated]);
        let text = other.encode(&other.origin());
        assert_eq!(l.parse(&text), Err(MalformedCursor::OtherLayout));
        // The right tag but too few offsets.
        let short = URL_SAFE_NO_PAD.encode([l.tag, 1, 1]);
        assert_eq!(l.parse(&short), Err(MalformedCursor::OtherLayout));
    }

    #[test]
    fn join_and_covers_are_per_slot() {
        let mut a = Position::from_offsets(vec![5, 1]);
        let b = Position::from_offsets(vec![3, 4]);
        assert!(!a.covers(&b) && !b.covers(&a));
        a.join(&b);
        assert_eq!(a, Position::from_offsets(vec![5, 4]));
        assert!(a.covers(&b));
        a.advance(0, 2);
        assert_eq!(a.get(0), 5);
        a.advance(0, 9);
        assert_eq!(a.get(0), 9);
    }
}
