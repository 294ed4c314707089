//! The compression pool: chunks compressed a batch at a time by threads that live as long as
//! the writer, and the one-chunk Deflate and its check.

use std::io;

use flate2::{Compress, Compression, FlushCompress};

use super::*;

/// A chunk's compressed bytes, whether they are an earlier chunk's, and its [`chunk_hash`].
pub(super) type Packed = (Vec<u8>, bool, [u8; 32]);

/// One chunk's compressed bytes: the earlier chunk's when they encode exactly its data after
/// its dictionary, or its data compressed afresh. The earlier chunk's index entry proves that
/// by its CRC of the compressed bytes and its hash of what they encode; otherwise (an index
/// without them, or another dictionary), inflating them primed with the dictionary does.
pub(super) fn pack(mut j: Job, level: u32) -> io::Result<Packed> {
    if let Some(proven) = j.take_proven() {
        return Ok(proven);
    }
    let hash = if j.hash {
        chunk_hash(&j.dict, &j.data)
    } else {
        [0; 32]
    };
    if let Some(Candidate { packed, checks, .. }) = j.earlier {
        let same = match checks {
            Some(k) if j.hash && k.hash == hash => crc32fast::hash(&packed) == k.packed_crc,
            // The same bytes after another dictionary (a database page before them changed):
            // the earlier data still encodes them unless it reaches back into what changed,
            // and inflating it (far cheaper than compressing) tells.
            _ => inflates_to(&packed, &j.dict, &j.data),
        };
        if same {
            return Ok((packed, true, hash));
        }
    }
    deflate_chunk(&j.data, &j.dict, level).map(|p| (p, false, hash))
}

/// The threads that [`pack`] chunks for one [`ZipOut`], started once (a thread per batch left
/// glibc holding tens of MiB of freed memory in per-thread arenas).
pub(super) struct Pool {
    jobs: Option<std::sync::mpsc::Sender<(usize, Job)>>,
    done: std::sync::mpsc::Receiver<(usize, io::Result<Packed>)>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    pub(super) fn new(threads: usize, level: u32) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<(usize, Job)>();
        let (finished, done) = std::sync::mpsc::channel();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = std::sync::Arc::clone(&queue);
                let finished = finished.clone();
                std::thread::spawn(move || {
                    loop {
                        let next = queue.lock().map(|q| q.recv());
                        let Ok(Ok((i, job))) = next else { break };
                        let packed = std::panic::catch_unwind(move || pack(job, level))
                            .unwrap_or_else(|_| {
                                Err(io::Error::other("a compression thread failed"))
                            });
                        if finished.send((i, packed)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            jobs: Some(jobs),
            done,
            workers,
        }
    }

    /// [`pack`] every job, on the pool's threads; the results in the jobs' order. A job whose
    /// earlier chunk is already proven is done here: it is only handed back, and a round trip
    /// through the threads (two wake-ups) cost more than that. Most chunks of a database
    /// brought up to date page by page are such jobs.
    pub(super) fn run(&self, jobs: Vec<Job>) -> io::Result<Vec<Packed>> {
        let stopped = || io::Error::other("the compression threads stopped");
        let n = jobs.len();
        let queue = self.jobs.as_ref().ok_or_else(stopped)?;
        let mut out: Vec<Option<io::Result<Packed>>> = (0..n).map(|_| None).collect();
        let mut sent = 0;
        for (i, mut job) in jobs.into_iter().enumerate() {
            if let Some(proven) = job.take_proven() {
                out[i] = Some(Ok(proven));
            } else {
                queue.send((i, job)).map_err(|_| stopped())?;
                sent += 1;
            }
        }
        for _ in 0..sent {
            let (i, packed) = self.done.recv().map_err(|_| stopped())?;
            out[i] = Some(packed);
        }
        out.into_iter()
            .map(|p| p.unwrap_or_else(|| Err(stopped())))
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends every worker's loop.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Whether raw Deflate `packed`, primed with `dict`, inflates to exactly `data` (and nothing
/// is left over).
pub(super) fn inflates_to(packed: &[u8], dict: &[u8], data: &[u8]) -> bool {
    let mut d = flate2::Decompress::new(false);
    if !dict.is_empty() && d.set_dictionary(dict).is_err() {
        return false;
    }
    let mut out = vec![0u8; data.len() + 1];
    match d.decompress(packed, &mut out, flate2::FlushDecompress::Sync) {
        Ok(_) => {
            d.total_in() as usize == packed.len()
                && d.total_out() as usize == data.len()
                && out[..data.len()] == *data
        }
        Err(_) => false,
    }
}

/// Raw Deflate of one chunk, primed with `dict`, ended by a sync flush.
pub(super) fn deflate_chunk(data: &[u8], dict: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Done once every byte went in and the flush did not fill the output.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    Ok(out)
}
