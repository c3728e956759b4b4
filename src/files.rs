//! Turning what the user gave (picked files, a picked folder, a drop of files, folders
//! or zips) into a flat, sorted list of [`InputFile`]s for the worker. Only `File`
//! handles are gathered here; the bytes are read later, in the worker.

use js_sys::{Array, Promise};
use nodulens_app::protocol::InputFile;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DataTransfer, File, FileList, FileSystemDirectoryEntry, FileSystemEntry, FileSystemFileEntry,
};

/// Hidden files (`.DS_Store`, `._foo` resource forks) are never part of a scan.
fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn sorted(mut files: Vec<InputFile>) -> Vec<InputFile> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Files of an `<input type=file>` (with or without `webkitdirectory`).
pub fn from_file_list(list: &FileList) -> Vec<InputFile> {
    let files = (0..list.length())
        .filter_map(|i| list.get(i))
        .filter(|f| !hidden(&f.name()))
        .map(|file| {
            // A folder pick gives each file its path inside the folder.
            // `webkitRelativePath` is not in web-sys's File; read it as a property.
            let relative = js_sys::Reflect::get(&file, &"webkitRelativePath".into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let path = if relative.is_empty() {
                file.name()
            } else {
                relative
            };
            InputFile { path, file }
        })
        .filter(|f| !f.path.split('/').any(hidden))
        .collect();
    sorted(files)
}

/// The entries of a drop. Must be called synchronously in the `drop` handler: the
/// `DataTransferItemList` is emptied when the handler returns.
pub fn drop_entries(transfer: &DataTransfer) -> (Vec<FileSystemEntry>, Vec<File>) {
    let items = transfer.items();
    let mut entries = Vec::new();
    for i in 0..items.length() {
        let Some(item) = items.get(i) else { continue };
        if item.kind() != "file" {
            continue;
        }
        if let Ok(Some(entry)) = item.webkit_get_as_entry() {
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        // No entry API (or nothing it understood): plain files only.
        let files = transfer
            .files()
            .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
            .unwrap_or_default();
        return (entries, files);
    }
    (entries, Vec::new())
}

fn error_text(e: &wasm_bindgen::JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    if let Some(err) = e.dyn_ref::<web_sys::DomException>() {
        return err.message();
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

async fn entry_file(entry: &FileSystemFileEntry) -> Result<File, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        entry.file_with_callback_and_callback(&resolve, &reject);
    });
    let file = JsFuture::from(promise).await.map_err(|e| {
        format!(
            "{}: could not be read: {}",
            entry.full_path(),
            error_text(&e)
        )
    })?;
    file.dyn_into()
        .map_err(|_| format!("{}: not a file", entry.full_path()))
}

async fn read_batch(reader: &web_sys::FileSystemDirectoryReader) -> Result<Array, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        if let Err(e) = reader.read_entries_with_callback_and_callback(&resolve, &reject) {
            let _ = reject.call1(&wasm_bindgen::JsValue::NULL, &e);
        }
    });
    let batch = JsFuture::from(promise).await.map_err(|e| error_text(&e))?;
    batch
        .dyn_into()
        .map_err(|_| "a folder listing was not a list".to_owned())
}

/// Walks dropped entries (folders recursively) into files with their paths.
pub async fn walk(
    entries: Vec<FileSystemEntry>,
    loose: Vec<File>,
) -> Result<Vec<InputFile>, String> {
    let mut out: Vec<InputFile> = loose
        .into_iter()
        .map(|file| InputFile {
            path: file.name(),
            file,
        })
        .collect();
    let mut stack = entries;
    while let Some(entry) = stack.pop() {
        if hidden(&entry.name()) {
            continue;
        }
        let path = entry.full_path().trim_start_matches('/').to_owned();
        if entry.is_directory() {
            let reader = entry
                .unchecked_ref::<FileSystemDirectoryEntry>()
                .create_reader();
            // readEntries returns the listing in batches (100 in Chrome) until empty.
            loop {
                let batch = read_batch(&reader)
                    .await
                    .map_err(|e| format!("{path}: the folder could not be listed: {e}"))?;
                if batch.length() == 0 {
                    break;
                }
                stack.extend(batch.iter().map(|e| e.unchecked_into::<FileSystemEntry>()));
            }
        } else if entry.is_file() {
            let file = entry_file(entry.unchecked_ref::<FileSystemFileEntry>()).await?;
            out.push(InputFile { path, file });
        }
    }
    Ok(sorted(out))
}

/// A short description of what is being opened, for the progress line.
pub fn describe(files: &[InputFile]) -> String {
    match files {
        [] => "nothing".into(),
        [one] => one.path.clone(),
        [first, ..] => {
            let top = first.path.split('/').next().unwrap_or_default();
            let same_folder = first.path.contains('/')
                && files.iter().all(|f| f.path.split('/').next() == Some(top));
            if same_folder {
                format!("{top}/ ({} files)", files.len())
            } else {
                format!("{} files", files.len())
            }
        }
    }
}
