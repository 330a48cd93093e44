//! # The job's end
//!
//! In: a job whose work is all done. Out: its parquet parts
//! compacted into the job's files, the store finished, and the job's check of those files
//! recorded on its row. A local run seals its job at its end ([`super::run_job`]); a job
//! queued for workers is sealed by whichever process sees its last item done
//! ([`super::worker::end_queued_job`]).

use anyhow::{Context, Result};

use crate::catalog::CollectionCatalog;
use crate::consistency::{check_touched, Verification};
use crate::parquet_copy::ParquetCopy;
use crate::store::VectorIndex;

/// How many files a job touches before the catalog's statistics are refreshed at its end,
/// and writes before the commit stage first refreshes them.
pub(super) const STATISTICS_AFTER_FILES: u64 = 10_000;

/// The end-of-job steps of a job whose work is all done: its parquet parts compacted, the
/// store finished, its check of the files it touched recorded on its row (none when it
/// touched nothing), and the catalog's statistics refreshed after many changes.
pub(super) async fn seal_job(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    job_id: &str,
) -> Result<Option<Verification>> {
    parquet.compact_job(job_id).context("compacting the job's parquet parts")?;
    index.finish().await?;
    let Some(verification) = check_touched(catalog, index, job_id).await? else { return Ok(None) };
    catalog.record_verification(job_id, &serde_json::to_value(&verification)?).await?;
    if verification.files >= STATISTICS_AFTER_FILES {
        catalog.refresh_statistics().await?;
    }
    Ok(Some(verification))
}
