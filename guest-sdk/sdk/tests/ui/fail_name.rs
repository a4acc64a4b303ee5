#[fnhost_guest::export]
fn this_function_name_is_much_longer_than_the_sixty_three_characters_allowed() {}

#[fnhost_guest::export]
fn café() {}

fn main() {}
