//! The memory budget of a plugin call: one budget for every memory and table of every
//! instance together, and caps on how many there may be.

/// One memory budget for a whole plugin call: every linear memory and every table of every
/// instance of the component counts against `limits.memory_mib` together (wasmtime's own
/// `StoreLimits` caps each memory alone, so eight memories could take eight times the cap).
/// Remembers whether it refused a growth.
pub struct Limiter {
    max_bytes: usize,
    used: usize,
    pub denied: bool,
}

/// What one table element is charged (a pointer, as wasmtime keeps them).
const TABLE_ELEMENT_BYTES: usize = 8;

/// Linear memories, tables and instances one plugin call may have (Python and JavaScript
/// guests need a few dozen instances; no guest needs more than a few memories).
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;
const MAX_INSTANCES: usize = 100;

impl Limiter {
    /// A budget of `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            used: 0,
            denied: false,
        }
    }

    fn grow(&mut self, by: usize) -> wasmtime::Result<bool> {
        match self.used.checked_add(by) {
            Some(total) if total <= self.max_bytes => {
                self.used = total;
                Ok(true)
            }
            _ => {
                self.denied = true;
                Err(wasmtime::Error::msg("memory limit reached"))
            }
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{MemorySection, MemoryType, Module, RefType, TableSection, TableType};

    /// A core module with `memories` memories of `pages` 64 KiB pages each, and `tables`
    /// tables of `elements` elements each.
    fn module(memories: u32, pages: u64, tables: u32, elements: u64) -> Vec<u8> {
        let mut m = Module::new();
        if tables > 0 {
            let mut t = TableSection::new();
            for _ in 0..tables {
                t.table(TableType {
                    element_type: RefType::FUNCREF,
                    table64: false,
                    minimum: elements,
                    maximum: None,
                    shared: false,
                });
            }
            m.section(&t);
        }
        if memories > 0 {
            let mut s = MemorySection::new();
            for _ in 0..memories {
                s.memory(MemoryType {
                    minimum: pages,
                    maximum: None,
                    memory64: false,
                    shared: false,
                    page_size_log2: None,
                });
            }
            m.section(&s);
        }
        m.finish()
    }

    /// Instantiate `wasm` in a store whose whole budget is `mib`: `Ok` if it fits, else
    /// whether the budget was what refused it, and the error.
    fn fits(wasm: &[u8], mib: usize) -> Result<(), (bool, String)> {
        let engine = &super::super::runtime().unwrap().engine;
        let module = wasmtime::Module::new(engine, wasm).unwrap();
        let mut store = wasmtime::Store::new(engine, Limiter::new(mib << 20));
        store.limiter(|l| l);
        let result = wasmtime::Instance::new(&mut store, &module, &[]);
        result
            .map(|_| ())
            .map_err(|e| (store.data().denied, e.to_string()))
    }

    #[test]
    fn one_budget_for_all_memories_and_tables_together() {
        // One memory of 200 MiB fits 256 MiB; eight of them do not, together.
        assert_eq!(fits(&module(1, 3200, 0, 0), 256), Ok(()));
        assert!(fits(&module(8, 3200, 0, 0), 256).unwrap_err().0);
        // Tables count too: ten of a million elements do not fit 16 MiB.
        assert_eq!(fits(&module(0, 0, 1, 1000), 16), Ok(()));
        assert!(fits(&module(0, 0, 10, 1_000_000), 16).unwrap_err().0);
        // Nor do more memories or tables than a plugin may have, however small.
        let (_, e) = fits(&module(MAX_MEMORIES as u32 + 1, 1, 0, 0), 256).unwrap_err();
        assert!(e.contains("memory count"), "{e}");
        let (_, e) = fits(&module(0, 0, 90, 1), 256).unwrap_err();
        assert!(e.contains("table count"), "{e}");
    }
}
