//! Leader leases on PostgreSQL: one statement takes a free or expired lease
//! or renews one's own. Rival collectors racing for the same row queue on
//! its lock and the loser re-reads the winner's row, so exactly one holds
//! it; the database's clock decides expiry, so theirs need not agree.

use std::time::Duration;

use super::PgStore;
use crate::store::{Lease, StoreError};

impl PgStore {
    pub(crate) fn pg_try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        self.run(move |c| {
            Ok(c.query_opt(
                "INSERT INTO leases (name, holder, expires)
                 VALUES ($1, $2, clock_timestamp() + $3::BIGINT * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                     expires = excluded.expires
                 WHERE leases.expires < clock_timestamp() OR leases.holder = excluded.holder
                 RETURNING holder",
                &[&name, &holder, &ttl_ms],
            )?
            .is_some())
        })
    }

    /// Expiry by the database's clock, as `pg_try_lease` judges it.
    pub(crate) fn pg_leases(&self, limit: usize) -> Result<Vec<Lease>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            Ok(c.query(
                "SELECT name, holder,
                        (EXTRACT(EPOCH FROM expires) * 1000)::BIGINT,
                        expires >= clock_timestamp()
                 FROM leases ORDER BY name LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(|r| Lease {
                name: r.get(0),
                holder: r.get(1),
                expires_ms: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                live: r.get(3),
            })
            .collect())
        })
    }

    pub(crate) fn pg_release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )? == 1)
        })
    }
}
