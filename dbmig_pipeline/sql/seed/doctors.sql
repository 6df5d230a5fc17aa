-- Generic doctors with ids 1 to n, each in an existing office; fixed edge-case rows come afterwards.
INSERT INTO public.doctors (id, created_at, updated_at, office_id, first_name, last_name, email, phone,
                            license_no, specialty, is_active)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share),
    1 + floor(u3 * :n_offices)::int,
    pg_temp.seed_messy(first, u5, 0.03, 0.001),
    pg_temp.seed_messy(last, u7, 0.03, 0.001),
    pg_temp.seed_email(lower(first || '.' || last) || i,
                       pg_temp.seed_pick(ARRAY['example.com', 'dentist.example.org', 'mail.test'], u9), u8),
    pg_temp.seed_phone(u10, u11, u12),
    CASE WHEN u13 < 0.10 THEN NULL
         WHEN u13 < 0.13 THEN ' LIC-' || (100000 + i) || ' '
         WHEN u13 < 0.14 THEN ''
         ELSE 'LIC-' || (100000 + i) END,
    CASE WHEN u14 < 0.40 THEN 'ORTHO'
         WHEN u14 < 0.68 THEN 'GP'
         WHEN u14 < 0.83 THEN 'PEDO'
         WHEN u14 < 0.90 THEN 'OTHER'
         WHEN u14 < 0.93 THEN 'ortho'
         WHEN u14 < 0.95 THEN 'Gp'
         WHEN u14 < 0.97 THEN ' PEDO '
         WHEN u14 < 0.98 THEN 'other'
         ELSE pg_temp.seed_pick(ARRAY['DDS', 'ENDO', 'perio', 'X', ''], u15) END,
    u15 < 0.93
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 9) AS u3,
           pg_temp.seed_u(b, 15) AS u5, pg_temp.seed_u(b, 21) AS u7, pg_temp.seed_u(b, 24) AS u8,
           pg_temp.seed_u(b, 27) AS u9, pg_temp.seed_u(b, 30) AS u10, pg_temp.seed_u(b, 33) AS u11,
           pg_temp.seed_u(b, 36) AS u12, pg_temp.seed_u(b, 39) AS u13, pg_temp.seed_u(b, 42) AS u14,
           pg_temp.seed_u(b, 45) AS u15,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           pg_temp.seed_pick(:first_names, pg_temp.seed_u(b, 12)) AS first,
           pg_temp.seed_pick(:last_names, pg_temp.seed_u(b, 18)) AS last
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'doctors', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
