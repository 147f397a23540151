//! `tessera export`: every stored title with its vectors, semantic ID and tags, for training
//! pipelines. Streams the store page by page (memory stays bounded by one page, or one Parquet
//! row group), and writes to a temporary file renamed into place at the end, so a reader never
//! sees half an export.
//!
//! JSON Lines: one object per title (`id`, `name`, `year`, `language`, `semantic_id` as a list of
//! codes, `semantic_id_codebook`, `tags`, `vectors`, `multivectors`). Parquet: columns `id`,
//! `name`, `year`, `language`, `semantic_id` (list of int32), `semantic_id_codebook`,
//! `tags_json` (the tags as a JSON array), and one list-of-float column per dense vector (named
//! after it); multivectors are in the JSON Lines export only.

use anyhow::Context;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tessera_indexes::{Entity, EntityStore, VectorKind};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// Flags of `tessera export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Data directory.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    data: PathBuf,
    #[command(flatten)]
    store: super::store_cmd::StoreArg,
    /// Titles per store page (and per Parquet row group).
    #[arg(long, default_value_t = 1024)]
    page: usize,
}

/// Writes `out` through a temporary file beside it, renamed into place on success.
fn atomically(
    out: &Path,
    write: impl FnOnce(std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    match write(file) {
        Ok(()) => std::fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Calls `each` with every page of stored titles.
fn pages(
    store: &dyn EntityStore,
    page: usize,
    mut each: impl FnMut(Vec<Entity>) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let mut cursor: Option<String> = None;
    let mut total = 0;
    loop {
        let page = store.scan(cursor.as_deref(), page.max(1), true)?;
        total += page.entities.len();
        if !page.entities.is_empty() {
            each(page.entities)?;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(total),
        }
    }
}

fn jsonl(store: &dyn EntityStore, page: usize, file: std::fs::File) -> anyhow::Result<usize> {
    let mut out = std::io::BufWriter::new(file);
    let total = pages(store, page, |entities| {
        for e in entities {
            let line = serde_json::json!({
                "id": e.id,
                "name": e.name,
                "year": e.year,
                "language": e.language,
                "semantic_id": e.semantic_id.as_ref().map(|s| &s.id.0),
                "semantic_id_codebook": e.semantic_id.as_ref().map(|s| &s.codebook),
                "tags": e.tags,
                "vectors": e.vectors,
                "multivectors": e.multivectors,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    out.flush()?;
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .sync_all()?;
    Ok(total)
}

/// Levels of an optional LIST column: (values, definition levels, repetition levels).
fn list_levels<T: Clone>(rows: &[Option<&[T]>]) -> (Vec<T>, Vec<i16>, Vec<i16>) {
    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match row {
            None => {
                def.push(0);
                rep.push(0);
            }
            Some([]) => {
                def.push(1);
                rep.push(0);
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    values.push(item.clone());
                    def.push(2);
                    rep.push(i16::from(i > 0));
                }
            }
        }
    }
    (values, def, rep)
}

fn bytes(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// An optional list-of-float column named `name` (Parquet's three-level LIST).
fn float_list(name: &str) -> parquet::errors::Result<parquet::schema::types::Type> {
    use parquet::basic::{ConvertedType, Repetition, Type as Physical};
    use parquet::schema::types::Type;
    let element = Type::primitive_type_builder("element", Physical::FLOAT)
        .with_repetition(Repetition::REQUIRED)
        .build()?;
    let list = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![Arc::new(element)])
        .build()?;
    Type::group_type_builder(name)
        .with_repetition(Repetition::OPTIONAL)
        .with_converted_type(ConvertedType::LIST)
        .with_fields(vec![Arc::new(list)])
        .build()
}

fn parquet_file(
    store: &dyn EntityStore,
    page: usize,
    file: std::fs::File,
) -> anyhow::Result<usize> {
    let dense: Vec<String> = store
        .schema()
        .vectors
        .iter()
        .filter(|(_, s)| s.kind == VectorKind::Dense)
        .map(|(n, _)| n.clone())
        .collect();
    let fixed = parquet::schema::parser::parse_message_type(
        "message entity {\n  required binary id (UTF8);\n  required binary name (UTF8);\n  optional int32 year;\n  required binary language (UTF8);\n  optional group semantic_id (LIST) { repeated group list { required int32 element; } }\n  optional binary semantic_id_codebook (UTF8);\n  required binary tags_json (UTF8);\n}",
    )?;
    // Vector columns are built, not parsed: their names (`text/model@revision`) hold
    // characters the schema text format does not take.
    let mut fields = fixed.get_fields().to_vec();
    for name in &dense {
        fields.push(Arc::new(float_list(name)?));
    }
    let schema = Arc::new(
        parquet::schema::types::Type::group_type_builder("entity")
            .with_fields(fields)
            .build()?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(file, schema, props)?;
    let total = pages(store, page, |entities| {
        let mut group = writer.next_row_group()?;
        let text_column =
            |group: &mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>,
             values: Vec<ByteArray>,
             def: Option<&[i16]>|
             -> anyhow::Result<()> {
                let mut column = group.next_column()?.context("parquet: missing column")?;
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, def, None)?;
                column.close()?;
                Ok(())
            };
        text_column(
            &mut group,
            entities.iter().map(|e| bytes(&e.id)).collect(),
            None,
        )?;
        text_column(
            &mut group,
            entities.iter().map(|e| bytes(&e.name)).collect(),
            None,
        )?;
        {
            let years: Vec<i32> = entities
                .iter()
                .filter_map(|e| e.year.map(i32::from))
                .collect();
            let def: Vec<i16> = entities
                .iter()
                .map(|e| i16::from(e.year.is_some()))
                .collect();
            let mut column = group.next_column()?.context("parquet: missing column")?;
            column
                .typed::<Int32Type>()
                .write_batch(&years, Some(&def), None)?;
            column.close()?;
        }
        text_column(
            &mut group,
            entities.iter().map(|e| bytes(&e.language)).collect(),
            None,
        )?;
        {
            let codes: Vec<Option<Vec<i32>>> = entities
                .iter()
                .map(|e| {
                    e.semantic_id
                        .as_ref()
                        .map(|s| s.id.0.iter().map(|&c| i32::from(c)).collect())
                })
                .collect();
            let rows: Vec<Option<&[i32]>> = codes.iter().map(|c| c.as_deref()).collect();
            let (values, def, rep) = list_levels(&rows);
            let mut column = group.next_column()?.context("parquet: missing column")?;
            column
                .typed::<Int32Type>()
                .write_batch(&values, Some(&def), Some(&rep))?;
            column.close()?;
        }
        {
            let books: Vec<ByteArray> = entities
                .iter()
                .filter_map(|e| e.semantic_id.as_ref().map(|s| bytes(&s.codebook)))
                .collect();
            let def: Vec<i16> = entities
                .iter()
                .map(|e| i16::from(e.semantic_id.is_some()))
                .collect();
            text_column(&mut group, books, Some(&def))?;
        }
        let tags = entities
            .iter()
            .map(|e| serde_json::to_string(&e.tags).map(|t| bytes(&t)))
            .collect::<Result<Vec<_>, _>>()?;
        text_column(&mut group, tags, None)?;
        for name in &dense {
            let rows: Vec<Option<&[f32]>> = entities
                .iter()
                .map(|e| e.vectors.get(name).map(Vec::as_slice))
                .collect();
            let (values, def, rep) = list_levels(&rows);
            let mut column = group.next_column()?.context("parquet: missing column")?;
            column
                .typed::<FloatType>()
                .write_batch(&values, Some(&def), Some(&rep))?;
            column.close()?;
        }
        group.close()?;
        Ok(())
    })?;
    writer.into_inner()?.sync_all()?;
    Ok(total)
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open_existing(&args.data)?;
    let mut total = 0;
    atomically(&args.out, |file| {
        total = match args.format {
            Format::Jsonl => jsonl(&*store, args.page, file)?,
            Format::Parquet => parquet_file(&*store, args.page, file)?,
        };
        Ok(())
    })?;
    println!("exported {total} titles to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_levels_encode_null_empty_and_values() {
        let rows: Vec<Option<&[i32]>> = vec![Some(&[1, 2]), None, Some(&[]), Some(&[3])];
        let (values, def, rep) = list_levels(&rows);
        assert_eq!(values, [1, 2, 3]);
        assert_eq!(def, [2, 2, 0, 1, 2]);
        assert_eq!(rep, [0, 1, 0, 0, 0]);
    }
}
