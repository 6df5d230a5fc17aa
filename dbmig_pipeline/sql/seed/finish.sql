-- Serial sequences past the highest id (the seed writes the ids itself).
SELECT setval(pg_get_serial_sequence('public.offices', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.offices), false);
SELECT setval(pg_get_serial_sequence('public.doctors', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.doctors), false);
SELECT setval(pg_get_serial_sequence('public.patients', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.patients), false);
SELECT setval(pg_get_serial_sequence('public.orders', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.orders), false);
SELECT setval(pg_get_serial_sequence('public.jaws', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.jaws), false);
SELECT setval(pg_get_serial_sequence('public.system_messages', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM public.system_messages), false);
