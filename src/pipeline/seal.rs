//! # The job's end
//!
//! In: a job whose work is all done, and the files it touched. Out: its parquet parts
//! compacted into the job's files, the store finished, and the job's check of those files
//! recorded on its row. A local run seals its job at its end ([`super::run_job`]); a job
//! queued for workers is sealed by whichever process sees its last item done
//! ([`super::worker::end_queued_job`]).

use anyhow::{Context, Result};

use crate::catalog::CollectionCatalog;
use crate::consistency::{check_touched, Touched, Verification};
use crate::parquet_copy::ParquetCopy;
use crate::store::VectorIndex;

/// How many files a job touches before the catalog's statistics are refreshed at its end.
const STATISTICS_AFTER_FILES: usize = 10_000;

/// The end-of-job steps of a job whose work is all done: its parquet parts compacted, the
/// store finished, the catalog's statistics refreshed after many changes, and its check of
/// the files it touched recorded on its row (none when it touched nothing).
pub(super) async fn seal_job(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    job_id: &str,
    touched: &[Touched],
) -> Result<Option<Verification>> {
    parquet.compact_job(job_id).context("compacting the job's parquet parts")?;
    index.finish().await?;
    if touched.is_empty() {
        return Ok(None);
    }
    if touched.len() >= STATISTICS_AFTER_FILES {
        catalog.refresh_statistics().await?;
    }
    let verification = check_touched(catalog, index, touched).await?;
    catalog.record_verification(job_id, &serde_json::to_value(&verification)?).await?;
    Ok(Some(verification))
}
