//! One pass over the mailbox: where the reading stands (a new position on the first start or
//! after a UIDVALIDITY change, recorded before any mail is read, so a crash midway resumes the
//! same reading), which UIDs are new (the backfill window applied to the mails that were there
//! first), and those mails fetched, prepared and recorded in bounded chunks.

use super::{ReadError, Reader, CHUNK_BYTES, CHUNK_MAILS, MAX_MAIL_BYTES, MIN_REREAD};
use crate::channels::email::imap::{Connection, Envelope, Selected};
use crate::channels::email::import::{Fetched, ImportError};
use crate::domain::now;
use crate::metrics::Metrics;
use crate::store::mailboxes::{self, Position};

impl Reader {
    /// Records every mail past the position, in chunks, then notes the complete reading.
    pub(super) async fn read_new(
        &self,
        connection: &mut Connection,
        selected: Selected,
    ) -> Result<(), ReadError> {
        let position = self.position(connection, selected).await?;
        let last = position.last_uid.clamp(0, i64::from(u32::MAX)) as u32;
        let backfill = match (position.backfill_until_uid, position.backfill_since) {
            (Some(until), Some(since)) if until > i64::from(last) => {
                Some((until.clamp(0, i64::from(u32::MAX)) as u32, since))
            }
            _ => None,
        };
        let mut uids = Vec::new();
        if let Some((until, since)) = backfill {
            // SINCE compares dates in the server's time zone: a day earlier, then the exact
            // arrival time below.
            let day = (since - chrono::Duration::days(1)).format("%-d-%b-%Y");
            let query = format!("UID {}:{until} SINCE {day}", last + 1);
            uids.extend(
                connection
                    .search(&query)
                    .await?
                    .into_iter()
                    .filter(|uid| *uid > last && *uid <= until),
            );
        }
        let from = backfill.map_or(last, |(until, _)| until).max(last) + 1;
        // `n:*` always matches the highest UID, even below n: filtered.
        let newer = connection.search(&format!("UID {from}:*")).await?;
        uids.extend(newer.into_iter().filter(|uid| *uid >= from));
        let reached = uids.iter().copied().max().unwrap_or(0).max(from - 1);
        let envelopes: Vec<Envelope> = connection
            .envelopes(&uids)
            .await?
            .into_iter()
            .filter(|e| match (backfill, e.arrival) {
                (Some((until, since)), Some(arrival)) if e.uid <= until => arrival >= since,
                _ => true,
            })
            .collect();
        for chunk in chunks(&envelopes) {
            self.import(connection, chunk).await?;
        }
        self.importer
            .record(&self.lease, Vec::new(), reached, Some(now()))
            .await?;
        Ok(())
    }

    /// The recorded position for this UIDVALIDITY; on the first start or after a change, a new
    /// one (recorded before any mail is read, so a crash midway resumes the same reading).
    async fn position(
        &self,
        connection: &mut Connection,
        selected: Selected,
    ) -> Result<Position, ReadError> {
        let db = self.importer.publisher.db();
        let recorded = mailboxes::get(&mut db.exec(), &self.lease.mailbox).await?;
        let validity = i64::from(selected.uid_validity);
        let previous = match recorded {
            Some(p) if p.uid_validity == Some(validity) => return Ok(p),
            other => other,
        };
        let at = now();
        let since = match &previous {
            Some(Position {
                uid_validity: Some(old),
                synced_at,
                ..
            }) => {
                tracing::warn!(mailbox = %self.lease.mailbox, old, new = validity, "UIDVALIDITY changed: reading again what arrived since the last reading");
                synced_at.unwrap_or(at) - self.backfill.max(MIN_REREAD)
            }
            _ => at - self.backfill,
        };
        let until = match selected.uid_next {
            Some(next) => next.saturating_sub(1),
            None if selected.exists == 0 => 0,
            None => connection.highest_uid().await?,
        };
        let ours = mailboxes::restart(
            &mut db.exec(),
            &self.lease.mailbox,
            &self.lease.owner,
            selected.uid_validity,
            until,
            since,
            self.lease.until(at),
            at,
        )
        .await?;
        if !ours {
            return Err(ImportError::LeaseLost.into());
        }
        Ok(Position {
            uid_validity: Some(validity),
            last_uid: 0,
            backfill_until_uid: Some(i64::from(until)),
            backfill_since: Some(since),
            synced_at: previous.and_then(|p| p.synced_at),
        })
    }

    /// Fetches, prepares and records one chunk.
    async fn import(
        &self,
        connection: &mut Connection,
        chunk: &[Envelope],
    ) -> Result<(), ReadError> {
        let (whole, large): (Vec<&Envelope>, Vec<&Envelope>) =
            chunk.iter().partition(|e| e.size <= MAX_MAIL_BYTES);
        let arrival = |uid: u32| chunk.iter().find(|e| e.uid == uid).and_then(|e| e.arrival);
        let mut fetched: Vec<Fetched> = Vec::with_capacity(chunk.len());
        if !whole.is_empty() {
            let uids: Vec<u32> = whole.iter().map(|e| e.uid).collect();
            let bytes = whole.iter().map(|e| u64::from(e.size)).sum();
            for (uid, raw) in connection.bodies(&uids, bytes, false).await? {
                fetched.push(Fetched {
                    uid,
                    arrival: arrival(uid),
                    raw,
                    too_large: None,
                });
            }
        }
        for envelope in large {
            for (uid, raw) in connection.bodies(&[envelope.uid], 0, true).await? {
                fetched.push(Fetched {
                    uid,
                    arrival: arrival(uid),
                    raw,
                    too_large: Some(envelope.size),
                });
            }
        }
        fetched.sort_by_key(|f| f.uid);
        Metrics::add(
            &self.importer.metrics.email_mails_fetched,
            fetched.len() as u64,
        );
        let mut mails = Vec::with_capacity(fetched.len());
        for one in fetched {
            let uid = one.uid;
            if let Some(incoming) = self.importer.prepare(one).await? {
                mails.push((uid, incoming));
            }
        }
        let last = chunk.iter().map(|e| e.uid).max().unwrap_or(0);
        self.importer.record(&self.lease, mails, last, None).await?;
        Ok(())
    }
}

/// Consecutive runs of at most `CHUNK_MAILS` mails and about `CHUNK_BYTES`.
fn chunks(envelopes: &[Envelope]) -> Vec<&[Envelope]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, envelope) in envelopes.iter().enumerate() {
        let size = u64::from(envelope.size.min(MAX_MAIL_BYTES));
        if i > start && (i - start >= CHUNK_MAILS || bytes + size > CHUNK_BYTES) {
            out.push(&envelopes[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < envelopes.len() {
        out.push(&envelopes[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(uid: u32, size: u32) -> Envelope {
        Envelope {
            uid,
            arrival: None,
            size,
        }
    }

    #[test]
    fn chunks_are_bounded_in_mails_and_bytes() {
        let small: Vec<Envelope> = (1..=250).map(|uid| envelope(uid, 1000)).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let big = [
            envelope(1, 10 << 20),
            envelope(2, 10 << 20),
            envelope(3, 60 << 20),
        ];
        let sizes: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(chunks(&[]).is_empty());
    }
}
