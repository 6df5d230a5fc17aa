-- Session-local helpers for the seed scripts.
-- Every function is one SQL expression, STABLE (as text || int is) and non-strict, so the planner
-- inlines it: no per-row function call. Arguments used more than once must be
-- plain columns of the caller's subquery (or inlining stops), hence the u0..uN
-- columns the table scripts compute once per row.
-- Randomness is sha512(seed, table, row id): the same seed gives the same rows,
-- whatever the order in which PostgreSQL evaluates them.

-- A uniform number in [0, 1) from three bytes of a row's random block.
CREATE OR REPLACE FUNCTION pg_temp.seed_u(b bytea, k int) RETURNS float8
LANGUAGE sql STABLE AS
$$ SELECT ((get_byte(b, k) << 16) | (get_byte(b, k + 1) << 8) | get_byte(b, k + 2))::float8 / 16777216 $$;

-- The random block of one row: 64 bytes, 21 uniforms (one sha512 is cheaper
-- than several md5). The table scripts compute it in a subquery fenced with
-- OFFSET 0, and the uniforms u0..u20 in another, so each is computed once.
CREATE OR REPLACE FUNCTION pg_temp.seed_block(seed text, tbl text, i int) RETURNS bytea
LANGUAGE sql STABLE AS
$$ SELECT sha512(convert_to(seed || '/' || tbl || '/' || i, 'UTF8')) $$;

-- One element of arr, chosen by u.
CREATE OR REPLACE FUNCTION pg_temp.seed_pick(arr text[], u float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT arr[1 + floor(u * cardinality(arr))::int] $$;

-- s surrounded by the white space Python's str.strip() removes: space, tab,
-- line feed, carriage return, form feed, vertical tab (\013).
CREATE OR REPLACE FUNCTION pg_temp.seed_pad(s text, u float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT (ARRAY[' ', '  ', E'\t', E'\n', E'\r\n', E'\r', E'\f', E'\013', E' \t'])[1 + floor(u * 9)::int]
          || s
          || (ARRAY[' ', E'\n', E'\t ', '', E'\r', E'\f', E'\013', '   ', E' \r\n'])[1 + mod(floor(u * 8191)::int, 9)] $$;

-- A NOT NULL text column: usually s, sometimes padded (still valid), rarely
-- blank after trimming (a quarantine by the mapping).
CREATE OR REPLACE FUNCTION pg_temp.seed_messy(s text, u float8, pad_share float8, blank_share float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT CASE
       WHEN u < blank_share THEN (ARRAY['', ' ', E'\t', E' \n ', E'\r\n', E'\f\013'])[1 + mod(floor(u * 1000003)::int, 6)]
       WHEN u < blank_share + pad_share THEN pg_temp.seed_pad(s, u)
       ELSE s
   END $$;

-- created_at: a few rows (1 in 200) from t0 to 2020-01-01, the start of the
-- first daily partition by default; the others uniform from then to t1.
CREATE OR REPLACE FUNCTION pg_temp.seed_created(u float8, t0 timestamptz, t1 timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS
$$ SELECT CASE
       WHEN u < 0.005 THEN t0 + (timestamptz '2020-01-01 00:00:00+00' - t0) * (u / 0.005)
       ELSE timestamptz '2020-01-01 00:00:00+00'
            + (t1 - timestamptz '2020-01-01 00:00:00+00') * ((u - 0.005) / 0.995)
   END $$;

-- updated_at from created_at c and two uniforms: `kind` picks the tie group
-- (exactly `tie`), the future (2 to 9 days past t1), a few rows updated
-- before they were created, rows never updated, and the usual later update.
CREATE OR REPLACE FUNCTION pg_temp.seed_updated(c timestamptz, kind float8, u float8, t1 timestamptz,
                                                tie timestamptz, tie_share float8) RETURNS timestamptz
LANGUAGE sql STABLE AS
$$ SELECT CASE
       WHEN kind < tie_share THEN tie
       WHEN kind < tie_share + 0.0005 THEN t1 + interval '2 days' + interval '7 days' * u
       WHEN kind < tie_share + 0.0015 THEN c - interval '3 hours' * u
       WHEN kind < 0.40 THEN c
       ELSE c + (t1 - c) * (u * u)
   END $$;

-- created_at of a row in the tie group never lies after the tie.
CREATE OR REPLACE FUNCTION pg_temp.seed_created_tied(c timestamptz, kind float8, tie timestamptz, tie_share float8)
RETURNS timestamptz
LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN kind < tie_share THEN least(c, tie) ELSE c END $$;

-- The parts of a North American number, from the uniforms v and w.
CREATE OR REPLACE FUNCTION pg_temp.seed_area(v float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT (201 + floor(v * 799)::int)::text $$;

CREATE OR REPLACE FUNCTION pg_temp.seed_exchange(w float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT (200 + floor(w * 800)::int)::text $$;

CREATE OR REPLACE FUNCTION pg_temp.seed_line(v float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT lpad(mod(floor(v * 16777216)::int, 10000)::text, 4, '0') $$;

-- A free-text phone in the formats the legacy screens accepted.
CREATE OR REPLACE FUNCTION pg_temp.seed_phone(u float8, v float8, w float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT CASE
       WHEN u < 0.28 THEN '(' || pg_temp.seed_area(v) || ') ' || pg_temp.seed_exchange(w) || '-' || pg_temp.seed_line(v)
       WHEN u < 0.42 THEN pg_temp.seed_area(v) || '.' || pg_temp.seed_exchange(w) || '.' || pg_temp.seed_line(v)
       WHEN u < 0.52 THEN '+1 ' || pg_temp.seed_area(v) || ' ' || pg_temp.seed_exchange(w) || ' ' || pg_temp.seed_line(v)
       WHEN u < 0.66 THEN pg_temp.seed_area(v) || '-' || pg_temp.seed_exchange(w) || '-' || pg_temp.seed_line(v)
       WHEN u < 0.73 THEN pg_temp.seed_area(v) || pg_temp.seed_exchange(w) || pg_temp.seed_line(v)
       -- 11 digits with the leading 1, padded, then numbers that are not 10 or 1+10 digits
       WHEN u < 0.77 THEN '1-' || pg_temp.seed_area(v) || '-' || pg_temp.seed_exchange(w) || '-' || pg_temp.seed_line(v)
       WHEN u < 0.79 THEN ' ' || pg_temp.seed_area(v) || '-' || pg_temp.seed_exchange(w) || '-' || pg_temp.seed_line(v) || ' '
       WHEN u < 0.81 THEN '+44 20 ' || pg_temp.seed_exchange(w) || ' ' || pg_temp.seed_line(v)
       WHEN u < 0.83 THEN pg_temp.seed_exchange(w) || '-' || pg_temp.seed_line(v)
       WHEN u < 0.85 THEN ''
       WHEN u < 0.87 THEN pg_temp.seed_pick(ARRAY['n/a', 'call front desk', 'TBD', 'ext. 12 only', '—'], w)
       ELSE NULL
   END $$;

-- An e-mail address built from local@domain, as messy as the legacy data.
CREATE OR REPLACE FUNCTION pg_temp.seed_email(local text, domain text, u float8) RETURNS text
LANGUAGE sql STABLE AS
$$ SELECT CASE
       WHEN u < 0.55 THEN local || '@' || domain
       WHEN u < 0.65 THEN initcap(local) || '@' || upper(domain)
       WHEN u < 0.68 THEN ' ' || local || '@' || domain || ' '
       WHEN u < 0.70 THEN ''
       WHEN u < 0.72 THEN local || ' at ' || domain
       WHEN u < 0.73 THEN local || '@mail@' || domain
       ELSE NULL
   END $$;
