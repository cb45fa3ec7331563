-- Returns {spent, held} (decimal strings) after releasing expired reservations.
purge()
return {redis.call('GET', spentk) or '0', redis.call('HGET', holdsk, 'held') or '0'}
