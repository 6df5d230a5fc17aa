-- Generic patients with ids 1 to n, each with an existing doctor; fixed edge-case rows come afterwards.
INSERT INTO public.patients (id, created_at, updated_at, doctor_id, first_name, last_name, birth_date,
                             gender, email, phone, status, notes)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share),
    1 + floor(u3 * :n_doctors)::int,
    pg_temp.seed_messy(first, u5, 0.03, 0.001),
    pg_temp.seed_messy(last, u7, 0.03, 0.001),
    CASE WHEN u8 < 0.010 THEN date '1900-01-01'
         WHEN u8 < 0.040 THEN NULL
         -- born after the record was created: a warning by the mapping
         WHEN u8 < 0.045 THEN (c AT TIME ZONE 'UTC')::date + 1 + floor(u9 * 2000)::int
         ELSE date '1940-01-01' + floor(u9 * 27000)::int END,
    CASE WHEN u10 < 0.44 THEN 'M'
         WHEN u10 < 0.88 THEN 'F'
         WHEN u10 < 0.91 THEN 'U'
         WHEN u10 < 0.95 THEN NULL
         WHEN u10 < 0.97 THEN 'm'
         WHEN u10 < 0.99 THEN 'f'
         ELSE 'X' END,
    pg_temp.seed_email(lower(first || '.' || last) || i,
                       pg_temp.seed_pick(ARRAY['example.com', 'mail.test', 'patients.example.net'], u12), u11),
    pg_temp.seed_phone(u13, u14, u15),
    CASE WHEN u16 < 0.100 THEN 0
         WHEN u16 < 0.450 THEN 1
         WHEN u16 < 0.700 THEN 2
         WHEN u16 < 0.900 THEN 3
         WHEN u16 < 0.997 THEN 9
         ELSE (ARRAY[4, 7, -1, 5])[1 + floor(u9 * 4)::int] END,
    CASE WHEN mod(i, 100000) = 77777 THEN repeat(note || E'\n', 100000 / octet_length(note || E'\n') + 1)
         WHEN u17 < 0.50 THEN NULL
         WHEN u17 < 0.80 THEN note
         WHEN u17 < 0.85 THEN pg_temp.seed_pad(note, u18)
         WHEN u17 < 0.87 THEN ''
         WHEN u17 < 0.88 THEN E' \t\n '
         ELSE note || ' (#' || i || ')' END
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 9) AS u3,
           pg_temp.seed_u(b, 15) AS u5, pg_temp.seed_u(b, 21) AS u7, pg_temp.seed_u(b, 24) AS u8,
           pg_temp.seed_u(b, 27) AS u9, pg_temp.seed_u(b, 30) AS u10, pg_temp.seed_u(b, 33) AS u11,
           pg_temp.seed_u(b, 36) AS u12, pg_temp.seed_u(b, 39) AS u13, pg_temp.seed_u(b, 42) AS u14,
           pg_temp.seed_u(b, 45) AS u15, pg_temp.seed_u(b, 48) AS u16, pg_temp.seed_u(b, 51) AS u17,
           pg_temp.seed_u(b, 54) AS u18,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           pg_temp.seed_pick(:first_names, pg_temp.seed_u(b, 12)) AS first,
           pg_temp.seed_pick(:last_names, pg_temp.seed_u(b, 18)) AS last,
           pg_temp.seed_pick(:notes, pg_temp.seed_u(b, 57)) AS note
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'patients', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
