//! # Parquet copy
//!
//! In: the points of a commit group. Out: parquet files under
//! `<data dir>/parquet/<collection>/`, one row per chunk (`doc_id`, `chunk_index`,
//! `point_id`, `path`, `content`, `content_hash`, `model`, `job_id`, `vector` as
//! FixedSizeList<Float32, dim>, `created_at`, and the chunk's origin: `page`, `page_end`,
//! `slide` (u32) and `sheet`, `heading`, `title` (strings), null where the format has none),
//! `sparse_indices` (List<UInt32>) and `sparse_values` (List<Float32>), the chunk's BM25
//! term weights, and `analyzer`, the analyzer that made them), and `ocr` (true when OCR read
//! some of the chunk's text, null otherwise), zstd-compressed, from which the collection can
//! be rebuilt without embedding.
//!
//! The schema's version is in the file's metadata (`ingest.schema_version`). Older files
//! are still read: version 1 files, written before the origin columns existed, have rows
//! without an origin; version 1 and 2 rows have no sparse vector, so reading makes it from
//! the row's text, as it does for any row whose analyzer is not this build's; rows before
//! version 4 were never read by OCR.
//!
//! Every file is written under a temporary name, synced, then renamed: a crash never
//! leaves a half-file that looks whole. A row is live when the catalog's completed file
//! with its `doc_id` names the row's `job_id` as its `embedded_job_id`; older rows are
//! superseded and never restored.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float32Builder, ListArray,
    ListBuilder, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use uuid::Uuid;

use crate::extract::Origin;
use crate::sparse::{Analyzer, SparseVector, ANALYZER_VERSION};
use crate::store::{extension_of, Point, PointPayload};

/// The version of the schema this build writes: 2 added the origin columns, 3 the sparse
/// vector, 4 the OCR mark.
pub const SCHEMA_VERSION: &str = "4";

/// The metadata key of the schema version.
const SCHEMA_VERSION_KEY: &str = "ingest.schema_version";

/// The columns version 2 added, all nullable, after those of version 1.
fn origin_fields() -> Vec<Field> {
    vec![
        Field::new("page", DataType::UInt32, true),
        Field::new("page_end", DataType::UInt32, true),
        Field::new("sheet", DataType::Utf8, true),
        Field::new("slide", DataType::UInt32, true),
        Field::new("heading", DataType::Utf8, true),
        Field::new("title", DataType::Utf8, true),
    ]
}

/// The columns version 3 added, after those of version 2: the sparse vector, and the
/// analyzer that made it.
fn sparse_fields() -> Vec<Field> {
    vec![
        Field::new("sparse_indices", DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))), true),
        Field::new("sparse_values", DataType::List(Arc::new(Field::new("item", DataType::Float32, false))), true),
        Field::new("analyzer", DataType::Utf8, true),
    ]
}

/// The column version 4 added, after those of version 3: whether OCR read the chunk's text.
fn ocr_field() -> Field {
    Field::new("ocr", DataType::Boolean, true)
}

/// The arrow schema of a copy with `dim`-dimensional vectors.
pub fn schema(dim: usize) -> SchemaRef {
    let mut fields = schema_v1_fields(dim);
    fields.extend(origin_fields());
    fields.extend(sparse_fields());
    fields.push(ocr_field());
    let metadata = [(SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string())].into();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The columns of a version 1 copy, before rows had an origin.
fn schema_v1_fields(dim: usize) -> Vec<Field> {
    vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("chunk_index", DataType::UInt32, false),
        Field::new("point_id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
        Field::new("content_hash", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("job_id", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32),
            false,
        ),
        Field::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]
}

/// The parquet copies of one collection.
pub struct ParquetCopy {
    dir: PathBuf,
    dim: usize,
}

impl ParquetCopy {
    pub fn new(data_dir: &Path, collection: &str, dim: usize) -> Self {
        Self { dir: data_dir.join("parquet").join(collection), dim }
    }

    /// A copy in any directory, such as the target of `ingest export`.
    pub fn at(dir: PathBuf, dim: usize) -> Self {
        Self { dir, dim }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one part of a job's copy and returns its final path. `part` names it among the
    /// job's parts, which many processes may be writing at once.
    pub fn write_part(&self, job_id: &str, part: &str, points: &[Point]) -> Result<PathBuf> {
        self.write_file(&format!("{job_id}-part{part}"), points)
    }

    /// Writes `points` atomically as `<name>.parquet`.
    pub fn write_file(&self, name: &str, points: &[Point]) -> Result<PathBuf> {
        let mut file = self.create(name)?;
        file.write(points)?;
        file.finish()
    }

    /// Merges a job's parts into files of at most [`FILE_TARGET_BYTES`] each (as their
    /// parts measure them; a part larger than that makes a file alone): `<job_id>.parquet`,
    /// then `<job_id>.1.parquet`, `<job_id>.2.parquet`… Each file's parts are removed once
    /// it is in place. Returns the files written.
    ///
    /// Files in place are never rewritten: a later compaction of the job (a crash cut the
    /// last one short, or a worker that fell behind wrote a part after it) goes on with the
    /// next number. A part whose file was moved into place but which a crash kept from
    /// being removed is copied once more; readers dedupe by point id.
    pub fn compact_job(&self, job_id: &str) -> Result<Vec<PathBuf>> {
        self.compact_job_within(job_id, FILE_TARGET_BYTES)
    }

    fn compact_job_within(&self, job_id: &str, target_bytes: u64) -> Result<Vec<PathBuf>> {
        let parts = self.files_matching(|name| name.starts_with(&format!("{job_id}-part")))?;
        let mut number = self.files_matching(|name| is_compacted_file_of(name, job_id))?.len();
        let mut written = Vec::new();
        let mut rest = parts.as_slice();
        while !rest.is_empty() {
            let (mut bytes, mut taken) = (0, 0);
            for part in rest {
                let size = std::fs::metadata(part).with_context(|| format!("reading {}", part.display()))?.len();
                if taken > 0 && bytes + size > target_bytes {
                    break;
                }
                (bytes, taken) = (bytes + size, taken + 1);
            }
            let (these, after) = rest.split_at(taken);
            let name = match number {
                0 => job_id.to_string(),
                n => format!("{job_id}.{n}"),
            };
            let mut file = self.create(&name)?;
            for part in these {
                for batch in read_batches(part, self.dim)? {
                    file.writer.write(&batch?).with_context(|| format!("copying rows of {}", part.display()))?;
                }
            }
            written.push(file.finish()?);
            for part in these {
                std::fs::remove_file(part).with_context(|| format!("removing {}", part.display()))?;
            }
            number += 1;
            rest = after;
        }
        Ok(written)
    }

    /// Every finished parquet file of the collection, sorted by name.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        self.files_matching(|_| true)
    }

    fn files_matching(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.with_context(|| format!("listing {}", self.dir.display()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.ends_with(".parquet") && !name.starts_with('.') && keep(name) {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Starts writing `<name>.parquet`, a batch of points at a time: see [`FileWriter`].
    pub fn create(&self, name: &str) -> Result<FileWriter> {
        self.create_in_groups_of(name, ROWS_PER_GROUP)
    }

    /// [`Self::create`], with row groups of at most `rows` rows: what the writer holds before
    /// they go to disk.
    pub fn create_in_groups_of(&self, name: &str, rows: usize) -> Result<FileWriter> {
        self.start(self.dir.join(format!("{name}.parquet")), rows)
    }

    fn start(&self, target: PathBuf, rows_per_group: usize) -> Result<FileWriter> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let name = target.file_name().context("parquet target has no name")?.to_string_lossy();
        let temp = self.dir.join(format!(".{name}.tmp"));
        let file = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        // A row group is buffered in memory until it is full: bounded, a job's compaction
        // holds 8,192 rows (about 13 MB of vectors) at a time, not the whole job.
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
            .set_max_row_group_size(rows_per_group)
            .build();
        let writer = ArrowWriter::try_new(file, schema(self.dim), Some(properties)).context("starting parquet")?;
        Ok(FileWriter { writer, temp: Temporary(Some(temp)), target, dir: self.dir.clone(), dim: self.dim })
    }
}

/// A parquet file being written, under a hidden temporary name that readers skip, until
/// [`FileWriter::finish`] syncs it and renames it into place: a crash leaves no half file,
/// and a writer dropped unfinished removes its temporary file.
pub struct FileWriter {
    writer: ArrowWriter<File>,
    temp: Temporary,
    target: PathBuf,
    dir: PathBuf,
    dim: usize,
}

impl FileWriter {
    /// Appends `points`, in row groups of at most [`ROWS_PER_GROUP`] rows.
    pub fn write(&mut self, points: &[Point]) -> Result<()> {
        for group in points.chunks(ROWS_PER_GROUP) {
            self.writer.write(&to_batch(group, self.dim)?).context("writing rows")?;
        }
        Ok(())
    }

    /// Finishes the file and moves it into place; returns its path.
    pub fn finish(self) -> Result<PathBuf> {
        let FileWriter { writer, mut temp, target, dir, .. } = self;
        let path = temp.0.clone().expect("an unfinished writer has its temporary file");
        let file = writer.into_inner().context("finishing parquet")?;
        file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
        std::fs::rename(&path, &target).with_context(|| format!("renaming {}", path.display()))?;
        temp.0 = None;
        File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
        Ok(target)
    }
}

/// The hidden temporary file of a [`FileWriter`], removed when it is dropped before it was
/// renamed into place (an error, or a repair stopped half way).
struct Temporary(Option<PathBuf>);

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Rows per parquet row group.
const ROWS_PER_GROUP: usize = 8192;

/// The size a job's compacted files grow to at most: a reader holds a row group at a time
/// whatever a file's size, but files of this size can be copied, checked and backed up a
/// piece at a time (about 150,000 rows of 384 dimensions).
const FILE_TARGET_BYTES: u64 = 256 << 20;

/// Whether `name` is one of the compacted files of job `job_id`: `<job_id>.parquet` or
/// `<job_id>.<n>.parquet`.
fn is_compacted_file_of(name: &str, job_id: &str) -> bool {
    let Some(rest) = name.strip_prefix(job_id).and_then(|rest| rest.strip_suffix(".parquet")) else {
        return false;
    };
    rest.is_empty() || rest.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn to_batch(points: &[Point], dim: usize) -> Result<RecordBatch> {
    let text = |f: fn(&PointPayload) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(points.iter().map(|p| f(&p.payload))))
    };
    let number = |f: fn(&Origin) -> Option<u32>| -> ArrayRef {
        Arc::new(points.iter().map(|p| f(&p.payload.origin)).collect::<UInt32Array>())
    };
    let name = |f: fn(&Origin) -> Option<&str>| -> ArrayRef {
        Arc::new(points.iter().map(|p| f(&p.payload.origin)).collect::<StringArray>())
    };
    let mut values = Vec::with_capacity(points.len() * dim);
    for point in points {
        if point.vector.len() != dim {
            bail!("point {} has {} dimensions, expected {dim}", point.id, point.vector.len());
        }
        values.extend_from_slice(&point.vector);
    }
    let vectors = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        dim as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )
    .context("building the vector column")?;
    let created = points
        .iter()
        .map(|p| {
            chrono::DateTime::parse_from_rfc3339(&p.payload.created_at)
                .map(|t| t.timestamp_micros())
                .with_context(|| format!("bad created_at {:?}", p.payload.created_at))
        })
        .collect::<Result<Vec<_>>>()?;
    let item = |data_type| Arc::new(Field::new("item", data_type, false));
    let mut sparse_indices = ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32));
    let mut sparse_values = ListBuilder::new(Float32Builder::new()).with_field(item(DataType::Float32));
    for point in points {
        sparse_indices.append_value(point.sparse.indices.iter().map(|&i| Some(i)));
        sparse_values.append_value(point.sparse.values.iter().map(|&v| Some(v)));
    }
    let columns: Vec<ArrayRef> = vec![
        text(|p| &p.doc_id),
        Arc::new(UInt32Array::from_iter_values(points.iter().map(|p| p.payload.chunk_index))),
        Arc::new(StringArray::from_iter_values(points.iter().map(|p| p.id.to_string()))),
        text(|p| &p.path),
        text(|p| &p.content),
        text(|p| &p.content_hash),
        text(|p| &p.model),
        text(|p| &p.job_id),
        Arc::new(vectors),
        Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
        number(|o| o.page),
        number(|o| o.page_end),
        name(|o| o.sheet.as_deref()),
        number(|o| o.slide),
        name(|o| o.heading.as_deref()),
        name(|o| o.title.as_deref()),
        Arc::new(sparse_indices.finish()),
        Arc::new(sparse_values.finish()),
        Arc::new(points.iter().map(|p| p.payload.analyzer.as_deref()).collect::<StringArray>()),
        Arc::new(points.iter().map(|p| p.payload.origin.ocr.then_some(true)).collect::<BooleanArray>()),
    ];
    RecordBatch::try_new(schema(dim), columns).context("assembling a parquet batch")
}

/// The batches of a copy, in the current schema, read one at a time: the columns an older
/// version lacks are null.
fn read_batches(path: &Path, dim: usize) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable parquet file", path.display()))?;
    let expected = schema(dim);
    let found = reader.schema().clone();
    let same = |fields: &[Arc<Field>]| {
        fields.len() == found.fields().len()
            && fields.iter().zip(found.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
    };
    let version_1 = schema_v1_fields(dim).len();
    let version_2 = version_1 + origin_fields().len();
    let version_3 = version_2 + sparse_fields().len();
    let Some(columns_found) = [expected.fields().len(), version_3, version_2, version_1]
        .into_iter()
        .find(|&columns| same(&expected.fields()[..columns]))
    else {
        bail!("{} does not have the expected schema for {dim}-dimensional vectors (found {found})", path.display());
    };
    let shown = path.display().to_string();
    let batches = reader.build().with_context(|| format!("reading {shown}"))?;
    Ok(batches.map(move |batch| {
        let batch = batch.with_context(|| format!("{shown} is corrupt"))?;
        if columns_found == expected.fields().len() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        let missing = &expected.fields()[columns_found..];
        columns.extend(missing.iter().map(|f| new_null_array(f.data_type(), batch.num_rows())));
        RecordBatch::try_new(expected.clone(), columns).context("adding the columns an older file lacks")
    }))
}

/// The dimension of the vectors of the parquet copy in `dir`, from its first file's schema;
/// `None` when it has no file.
pub fn dimension_in(dir: &Path) -> Result<Option<usize>> {
    let Some(first) = ParquetCopy::at(dir.to_path_buf(), 0).files()?.into_iter().next() else { return Ok(None) };
    let file = File::open(&first).with_context(|| format!("opening {}", first.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable parquet file", first.display()))?;
    match reader.schema().field_with_name("vector").map(|f| f.data_type().clone()) {
        Ok(DataType::FixedSizeList(_, dim)) if dim > 0 => Ok(Some(dim as usize)),
        _ => bail!("{} has no vector column of fixed size", first.display()),
    }
}

/// Reads every row of a parquet copy back as points, checking schema and dimension. A row
/// without this build's sparse vector (written before it, or by another analyzer) gets one
/// made from its text.
pub fn read_points(path: &Path, dim: usize) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for batch in point_batches(path, dim)? {
        points.extend(batch?);
    }
    Ok(points)
}

/// The rows of a parquet copy as points, as [`read_points`] reads them, a record batch (at
/// most 1,024 rows) at a time: a reader holds one batch of a file, never the whole file.
/// Schema and dimension are checked when the file is opened.
pub fn point_batches(path: &Path, dim: usize) -> Result<impl Iterator<Item = Result<Vec<Point>>>> {
    point_batches_where(path, dim, |_| true)
}

/// [`point_batches`], making only the points whose id `keep` lets through: a reader after
/// one range of ids reads the others' ids, not their text, vectors and payloads.
pub fn point_batches_where(
    path: &Path,
    dim: usize,
    keep: impl Fn(Uuid) -> bool,
) -> Result<impl Iterator<Item = Result<Vec<Point>>>> {
    let (analyzer, path) = (Analyzer::english(), path.to_path_buf());
    Ok(read_batches(&path, dim)?.map(move |batch| points_of(&batch?, &path, &analyzer, &keep)))
}

/// The points of one record batch of the file at `path` whose id `keep` lets through.
fn points_of(
    batch: &RecordBatch,
    path: &Path,
    analyzer: &Analyzer,
    keep: &impl Fn(Uuid) -> bool,
) -> Result<Vec<Point>> {
    let mut points = Vec::with_capacity(batch.num_rows());
    {
        let column = |name: &str| batch.column_by_name(name).expect("schema checked");
        let text = |name: &str| column(name).as_any().downcast_ref::<StringArray>().expect("schema checked").clone();
        let (doc_id, point_id, file_path, content, content_hash, model, job_id) = (
            text("doc_id"),
            text("point_id"),
            text("path"),
            text("content"),
            text("content_hash"),
            text("model"),
            text("job_id"),
        );
        let chunk_index = column("chunk_index").as_any().downcast_ref::<UInt32Array>().expect("schema checked");
        let vectors = column("vector").as_any().downcast_ref::<FixedSizeListArray>().expect("schema checked");
        let created =
            column("created_at").as_any().downcast_ref::<TimestampMicrosecondArray>().expect("schema checked");
        let number = |name: &str| column(name).as_any().downcast_ref::<UInt32Array>().expect("schema checked").clone();
        let (page, page_end, slide) = (number("page"), number("page_end"), number("slide"));
        let (sheet, heading, title) = (text("sheet"), text("heading"), text("title"));
        let get_number = |array: &UInt32Array, row: usize| array.is_valid(row).then(|| array.value(row));
        let get_text = |array: &StringArray, row: usize| array.is_valid(row).then(|| array.value(row).to_string());
        let list = |name: &str| column(name).as_any().downcast_ref::<ListArray>().expect("schema checked").clone();
        let (sparse_indices, sparse_values, analyzers) =
            (list("sparse_indices"), list("sparse_values"), text("analyzer"));
        let ocr = column("ocr").as_any().downcast_ref::<BooleanArray>().expect("schema checked").clone();
        for row in 0..batch.num_rows() {
            let id: Uuid = point_id.value(row).parse().with_context(|| format!("{}: bad point_id", path.display()))?;
            if !keep(id) {
                continue;
            }
            let vector = vectors.value(row);
            let vector = vector.as_any().downcast_ref::<Float32Array>().expect("schema checked").values().to_vec();
            let created_at = chrono::DateTime::from_timestamp_micros(created.value(row))
                .context("created_at out of range")?
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let text = content.value(row);
            let sparse = if analyzers.is_valid(row) && analyzers.value(row) == ANALYZER_VERSION {
                let indices = sparse_indices.value(row);
                let values = sparse_values.value(row);
                SparseVector {
                    indices: indices.as_any().downcast_ref::<UInt32Array>().expect("schema checked").values().to_vec(),
                    values: values.as_any().downcast_ref::<Float32Array>().expect("schema checked").values().to_vec(),
                }
            } else {
                analyzer.document(text)
            };
            let file_path = file_path.value(row);
            points.push(Point {
                id,
                vector,
                sparse,
                payload: PointPayload {
                    path: file_path.to_string(),
                    doc_id: doc_id.value(row).to_string(),
                    chunk_index: chunk_index.value(row),
                    content: text.to_string(),
                    content_hash: content_hash.value(row).to_string(),
                    job_id: job_id.value(row).to_string(),
                    model: model.value(row).to_string(),
                    created_at,
                    analyzer: Some(ANALYZER_VERSION.to_string()),
                    ext: extension_of(file_path),
                    origin: Origin {
                        page: get_number(&page, row),
                        page_end: get_number(&page_end, row),
                        sheet: get_text(&sheet, row),
                        slide: get_number(&slide, row),
                        heading: get_text(&heading, row),
                        title: get_text(&title, row),
                        ocr: ocr.is_valid(row) && ocr.value(row),
                    },
                },
            });
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(doc: &str, index: u32, dim: usize) -> Point {
        Point {
            id: crate::hash::point_id(doc, index),
            vector: (0..dim).map(|i| i as f32 / dim as f32).collect(),
            sparse: Analyzer::english().document(&format!("chunk {index}")),
            payload: PointPayload {
                path: format!("/docs/{doc}.txt"),
                doc_id: doc.into(),
                chunk_index: index,
                content: format!("chunk {index}"),
                content_hash: "h".into(),
                job_id: "job".into(),
                model: "m".into(),
                created_at: "2026-01-02T03:04:05.000006Z".into(),
                analyzer: Some(ANALYZER_VERSION.into()),
                ext: Some("txt".into()),
                origin: Origin {
                    page: index.is_multiple_of(2).then_some(index + 1),
                    page_end: index.is_multiple_of(2).then_some(index + 2),
                    sheet: (index == 1).then(|| "Budget".into()),
                    slide: None,
                    heading: Some(format!("Section {index}")),
                    title: None,
                    ocr: index == 3,
                },
            },
        }
    }

    #[test]
    fn a_writer_dropped_unfinished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let copy = ParquetCopy::at(dir.path().to_path_buf(), 4);
        let mut writer = copy.create_in_groups_of("repair-x", 1).unwrap();
        writer.write(&[point("a", 0, 4), point("a", 1, 4)]).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file while writing");
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut writer = copy.create_in_groups_of("repair-y", 1).unwrap();
        writer.write(&[point("a", 0, 4), point("a", 1, 4)]).unwrap();
        let written = writer.finish().unwrap();
        assert_eq!(copy.files().unwrap(), vec![written.clone()]);
        let groups = ParquetRecordBatchReaderBuilder::try_new(File::open(&written).unwrap())
            .unwrap()
            .metadata()
            .num_row_groups();
        assert_eq!(groups, 2, "a row group a row");
        assert_eq!(read_points(&written, 4).unwrap(), vec![point("a", 0, 4), point("a", 1, 4)]);
    }

    #[test]
    fn parts_round_trip_and_compact_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let copy = ParquetCopy::new(dir.path(), "c", 4);
        let first = vec![point("a", 0, 4), point("a", 1, 4)];
        let second = vec![point("b", 0, 4)];
        copy.write_part("job", "0", &first).unwrap();
        copy.write_part("job", "1", &second).unwrap();
        assert_eq!(copy.files().unwrap().len(), 2);
        let merged = copy.compact_job("job").unwrap().remove(0);
        assert_eq!(copy.files().unwrap(), vec![merged.clone()]);
        let read = read_points(&merged, 4).unwrap();
        assert_eq!(read, [first, second].concat());
        assert!(std::fs::read_dir(copy.dir()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }

    #[test]
    fn a_second_compaction_keeps_the_rows_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let copy = ParquetCopy::new(dir.path(), "c", 4);
        copy.write_part("job", "a-0", &[point("a", 0, 4)]).unwrap();
        let first = copy.compact_job("job").unwrap();
        // A part written after the job was compacted once, by a worker that fell behind.
        copy.write_part("job", "b-0", &[point("b", 0, 4)]).unwrap();
        let second = copy.compact_job("job").unwrap();
        let mut both = [first.clone(), second.clone()].concat();
        both.sort();
        assert_eq!(copy.files().unwrap(), both);
        assert!(second[0].ends_with("job.1.parquet"), "{second:?}");
        assert_eq!(read_points(&first[0], 4).unwrap(), vec![point("a", 0, 4)]);
        assert_eq!(read_points(&second[0], 4).unwrap(), vec![point("b", 0, 4)]);
        assert!(copy.compact_job("job").unwrap().is_empty(), "no parts left, nothing written");
    }

    #[test]
    fn a_job_compacts_into_files_within_the_target_size() {
        let dir = tempfile::tempdir().unwrap();
        let copy = ParquetCopy::new(dir.path(), "c", 4);
        let points: Vec<Point> = (0..6).map(|n| point("a", n, 4)).collect();
        for (n, point) in points.iter().enumerate() {
            copy.write_part("job", &format!("{n}"), std::slice::from_ref(point)).unwrap();
        }
        let part_size = std::fs::metadata(&copy.files().unwrap()[0]).unwrap().len();
        // Room for two parts a file, not three.
        let written = copy.compact_job_within("job", part_size * 2 + part_size / 2).unwrap();
        assert_eq!(written.len(), 3, "{written:?}");
        let mut listed = written.clone();
        listed.sort();
        assert_eq!(copy.files().unwrap(), listed);
        let names: Vec<_> = written.iter().map(|f| f.file_name().unwrap().to_string_lossy().to_string()).collect();
        assert_eq!(names, ["job.parquet", "job.1.parquet", "job.2.parquet"]);
        let read: Vec<Point> = written.iter().flat_map(|f| read_points(f, 4).unwrap()).collect();
        assert_eq!(read, points);
        assert!(is_compacted_file_of("job.12.parquet", "job") && !is_compacted_file_of("job-part1.parquet", "job"));
        assert!(!is_compacted_file_of("job.x.parquet", "job") && !is_compacted_file_of("jobs.parquet", "job"));
    }

    #[test]
    fn version_1_files_without_origin_columns_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.parquet");
        let points = vec![point("a", 0, 4), point("a", 1, 4)];
        // A version 1 file: the current batch without the origin columns and the version.
        let batch = to_batch(&points, 4).unwrap();
        let v1 = Arc::new(Schema::new(schema_v1_fields(4)));
        let columns = batch.columns()[..v1.fields().len()].to_vec();
        let mut writer = ArrowWriter::try_new(File::create(&path).unwrap(), v1.clone(), None).unwrap();
        writer.write(&RecordBatch::try_new(v1, columns).unwrap()).unwrap();
        writer.close().unwrap();

        let read = read_points(&path, 4).unwrap();
        let without_origin: Vec<Point> = points
            .into_iter()
            .map(|mut p| {
                p.payload.origin = Origin::default();
                p
            })
            .collect();
        assert_eq!(read, without_origin);
        // Compacted with new parts, old rows keep no origin and new ones keep theirs.
        let copy = ParquetCopy::at(dir.path().to_path_buf(), 4);
        std::fs::rename(&path, dir.path().join("job-part000000.parquet")).unwrap();
        copy.write_part("job", "1", &[point("b", 0, 4)]).unwrap();
        let merged = read_points(&copy.compact_job("job").unwrap()[0], 4).unwrap();
        assert_eq!(merged, [without_origin, vec![point("b", 0, 4)]].concat());
    }

    #[test]
    fn version_2_rows_get_their_sparse_vector_from_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.parquet");
        let points = vec![point("a", 0, 4), point("a", 1, 4)];
        let batch = to_batch(&points, 4).unwrap();
        let v2_columns = schema_v1_fields(4).len() + origin_fields().len();
        let v2 = Arc::new(Schema::new(schema(4).fields()[..v2_columns].to_vec()));
        let mut writer = ArrowWriter::try_new(File::create(&path).unwrap(), v2.clone(), None).unwrap();
        writer.write(&RecordBatch::try_new(v2, batch.columns()[..v2_columns].to_vec()).unwrap()).unwrap();
        writer.close().unwrap();

        let read = read_points(&path, 4).unwrap();
        assert_eq!(read, points);
        assert!(read.iter().all(|p| !p.sparse.indices.is_empty()), "made from the text: {read:?}");
    }

    #[test]
    fn wrong_dimension_and_corrupt_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let copy = ParquetCopy::new(dir.path(), "c", 4);
        let path = copy.write_part("job", "0", &[point("a", 0, 4)]).unwrap();
        let error = read_points(&path, 8).unwrap_err().to_string();
        assert!(error.contains("expected schema") && error.contains("job-part0"), "{error}");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let error = format!("{:#}", read_points(&path, 4).unwrap_err());
        assert!(error.contains("job-part0"), "{error}");
    }
}
