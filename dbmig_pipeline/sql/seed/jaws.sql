-- Generic jaws with ids 1 to n. patient_ref is a loose reference: mostly a patient id,
-- sometimes NULL, sometimes past the last patient.
INSERT INTO public.jaws (id, created_at, updated_at, patient_ref, arch, teeth, scan_url)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share),
    CASE WHEN u3 < 0.05 THEN NULL
         WHEN u3 < 0.10 THEN :n_patients + 1 + floor(u4 * 1000000)::int
         ELSE 1 + floor(u4 * :n_patients)::int END,
    CASE WHEN u5 < 0.500 THEN 'U'
         WHEN u5 < 0.998 THEN 'L'
         ELSE pg_temp.seed_pick(ARRAY['X', 'u', 'l'], u6) END,
    -- random tokens: unsorted, sometimes repeated; then spacing and empty tokens
    CASE WHEN u6 < 0.030 THEN NULL
         WHEN u6 < 0.050 THEN ''
         WHEN u6 < 0.200 THEN replace(teeth, ',', ', ')
         WHEN u6 < 0.250 THEN ' ' || teeth || ' ,'
         WHEN u6 < 0.300 THEN teeth || ',,' || pg_temp.seed_pick(:fdi, u7)
         WHEN u6 < 0.302 THEN teeth || ',' || pg_temp.seed_pick(ARRAY['19', 'ab', '60', '0', '9'], u7)
         ELSE teeth END,
    CASE WHEN u8 < 0.10 THEN NULL
         WHEN u8 < 0.12 THEN ' https://scans.example.com/jaws/' || i || E'.stl\n'
         ELSE 'https://scans.example.com/jaws/' || i || '.stl' END
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 9) AS u3,
           pg_temp.seed_u(b, 12) AS u4, pg_temp.seed_u(b, 15) AS u5, pg_temp.seed_u(b, 18) AS u6,
           pg_temp.seed_u(b, 21) AS u7, pg_temp.seed_u(b, 24) AS u8,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           concat_ws(',',
               pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 27)),
               CASE WHEN pg_temp.seed_u(b, 45) < 0.85 THEN pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 30)) END,
               CASE WHEN pg_temp.seed_u(b, 45) < 0.70 THEN pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 33)) END,
               CASE WHEN pg_temp.seed_u(b, 45) < 0.50 THEN pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 36)) END,
               CASE WHEN pg_temp.seed_u(b, 45) < 0.30 THEN pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 39)) END,
               CASE WHEN pg_temp.seed_u(b, 45) < 0.15 THEN pg_temp.seed_pick(:fdi, pg_temp.seed_u(b, 42)) END
           ) AS teeth
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'jaws', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
