// CRUD through node-postgres (pg 8) against the server in PGURL.
// Run by TestNodePostgres when the pg module can be resolved
// (NODE_PATH, or npm install pg next to this file).
const { Client } = require('pg');

function check(cond, msg) { if (!cond) { throw new Error('check failed: ' + msg); } }

(async () => {
  const c = new Client({ connectionString: process.env.PGURL });
  await c.connect();
  let r = await c.query('select 1 as a');
  check(r.rows[0].a === 1 || r.rows[0].a === '1', 'select 1: ' + JSON.stringify(r.rows));
  await c.query('create table n (id integer primary key, name text not null, v double precision, b boolean)');
  r = await c.query('insert into n(name, v, b) values($1, $2, $3) returning id', ['x', 1.5, true]);
  check(r.rows[0].id === 1, 'returning id: ' + JSON.stringify(r.rows));
  check(r.command === 'INSERT' && r.rowCount === 1, 'insert tag');
  await c.query({ name: 'ins', text: 'insert into n(name) values($1) returning id', values: ['n1'] });
  r = await c.query({ name: 'ins', text: 'insert into n(name) values($1) returning id', values: ['n2'] });
  check(r.rows[0].id === 3, 'named statement reuse');
  r = await c.query('select id, name, v, b from n where name = $1', ['x']);
  check(r.rows.length === 1 && r.rows[0].v === 1.5 && r.rows[0].b === true && r.rows[0].name === 'x', 'select: ' + JSON.stringify(r.rows));
  r = await c.query('update n set v = $1 where id > $2', [2.5, 1]);
  check(r.command === 'UPDATE' && r.rowCount === 2, 'update');
  r = await c.query('delete from n where id = $1', [3]);
  check(r.rowCount === 1, 'delete');
  try {
    await c.query('select 1/0 from nosuch');
    check(false, 'error expected');
  } catch (e) {
    check(e.code === '42P01', 'error code ' + e.code);
  }
  await c.query('BEGIN');
  await c.query('insert into n(name) values($1)', ['t1']);
  await c.query('COMMIT');
  r = await c.query('select count(*) as n from n');
  check(Number(r.rows[0].n) === 3, 'count ' + JSON.stringify(r.rows));
  await c.end();
  console.log('node-postgres CRUD ok');
})().catch((e) => { console.error(e); process.exit(1); });
