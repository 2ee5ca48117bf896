module hotswapdemo

go 1.19
