use cachet::cached;
pub struct Db;
pub struct DbError;
#[automatically_derived]
impl ::core::fmt::Debug for DbError {
    #[inline]
    fn fmt(&self, f: &mut ::core::fmt::Formatter) -> ::core::fmt::Result {
        ::core::fmt::Formatter::write_str(f, "DbError")
    }
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
pub fn __cachet_key_user_order_stats(
    db: &Db,
    user_id: i64,
) -> ::cachet::__private::CallKey {
    #[allow(unused_variables)]
    let db = &db;
    #[allow(unused_variables)]
    let user_id = &user_id;
    ::cachet::__private::CallKey {
        cache: ::cachet::__private::cache(),
        key: {
            #[allow(unused_imports)]
            use ::cachet::__private::{PartDisplay as _, PartFast as _};
            let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                37usize,
            );
            __cachet_rendered.push_str("user_order_stats:");
            (&::cachet::__private::Part(&(user_id))).push_to(&mut __cachet_rendered);
            __cachet_rendered
        },
        scope: ::cachet::__private::scope(
            ::cachet::__private::Option::None,
            ::alloc::vec::Vec::new(),
        ),
    }
}
pub async fn user_order_stats(db: &Db, user_id: i64) -> Result<u64, DbError> {
    let __cachet_call_key: ::cachet::__private::CallKey = {
        #[allow(unused_variables)]
        let db = &db;
        #[allow(unused_variables)]
        let user_id = &user_id;
        ::cachet::__private::CallKey {
            cache: ::cachet::__private::cache(),
            key: {
                #[allow(unused_imports)]
                use ::cachet::__private::{PartDisplay as _, PartFast as _};
                let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                    37usize,
                );
                __cachet_rendered.push_str("user_order_stats:");
                (&::cachet::__private::Part(&(user_id))).push_to(&mut __cachet_rendered);
                __cachet_rendered
            },
            scope: ::cachet::__private::scope(
                ::cachet::__private::Option::None,
                ::alloc::vec::Vec::new(),
            ),
        }
    };
    ::cachet::__private::call(
            __cachet_call_key,
            ::cachet::__private::plan(
                ::cachet::__private::Timeout::After(
                    ::cachet::__private::Duration::from_secs(3600),
                ),
                ::cachet::__private::Option::None,
            ),
            |_| false,
            async move {
                #[allow(
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::let_unit_value,
                    clippy::needless_return,
                    clippy::unreachable
                )]
                if false {
                    let __cachet_fake_return: Result<u64, DbError> = loop {};
                    return __cachet_fake_return;
                }
                let _ = db;
                Ok(user_id.unsigned_abs())
            },
            ::cachet::__private::pick_ok(),
        )
        .await
}
