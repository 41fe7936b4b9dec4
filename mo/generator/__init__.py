"""The synthetic insurer world: `generate_world` writes its history, `advance_day` plays it forward a day."""
