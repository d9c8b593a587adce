"""The synthetic demo world of 示範縣: people, households, land, welfare, tax, businesses and vehicles."""
