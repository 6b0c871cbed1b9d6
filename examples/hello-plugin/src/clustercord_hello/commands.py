from clustercord_sdk import CommandContext, Reply


def hello(ctx: CommandContext) -> Reply:
    count = ctx.store.get("count", 0) + 1
    ctx.store.set("count", count)
    words = " ".join([ctx.config["greeting"]] * ctx.options["times"])
    return Reply(
        text=f"👋 {words}, {ctx.options['name']}! (greeting #{count})", data={"count": count}
    )
