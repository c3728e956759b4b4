// Reads the files of a DICOM folder for the decode worker, which starts this worker and
// hands it the Files. A browser reads a File on the thread that asked for it, so reads asked
// for by the decoder stall while it decodes; from here they go on meanwhile. Each file is
// sent back as soon as it is read (its buffer transferred, not copied), at most `ahead`
// files beyond those the decoder has said it consumed, which bounds the memory they hold.
let files = [];
let next = 0;
let consumed = 0;
let ahead = 1;

function readMore() {
  while (next < files.length && next - consumed < ahead) {
    const index = next++;
    files[index].arrayBuffer().then(
      (buffer) => postMessage({ kind: 'file', index, buffer }, [buffer]),
      (error) => postMessage({ kind: 'error', index, message: String((error && error.message) || error) }),
    );
  }
}

onmessage = (event) => {
  const message = event.data;
  if (message.kind === 'read') {
    files = message.files;
    ahead = Math.max(1, message.ahead);
    next = 0;
    consumed = 0;
  } else if (message.kind === 'consumed') {
    consumed = Math.max(consumed, message.count);
  }
  readMore();
};
