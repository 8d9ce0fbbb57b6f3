use cachet::{Cache, cached};
pub struct Repo {
    cache: Cache,
}
impl Repo {
    #[doc(hidden)]
    #[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
    pub fn __cachet_key_name_of(&self, id: u64) -> ::cachet::__private::CallKey {
        #[allow(unused_variables)]
        let id = &id;
        ::cachet::__private::CallKey {
            cache: ::cachet::__private::IntoCache::into_cache(&self.cache),
            key: {
                let mut __cachet_key_builder = ::cachet::__private::KeyBuilder::method::<
                    Self,
                >("macrotest007");
                __cachet_key_builder.arg(id);
                __cachet_key_builder.finish("name_of")
            },
            scope: ::cachet::__private::scope(
                ::cachet::__private::Option::None,
                ::alloc::vec::Vec::new(),
            ),
        }
    }
    pub async fn name_of(&self, id: u64) -> String {
        let __cachet_call_key: ::cachet::__private::CallKey = {
            #[allow(unused_variables)]
            let id = &id;
            ::cachet::__private::CallKey {
                cache: ::cachet::__private::IntoCache::into_cache(&self.cache),
                key: {
                    let mut __cachet_key_builder = ::cachet::__private::KeyBuilder::method::<
                        Self,
                    >("macrotest007");
                    __cachet_key_builder.arg(id);
                    __cachet_key_builder.finish("name_of")
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
                    ::cachet::__private::Timeout::Default,
                    ::cachet::__private::Option::None,
                ),
                |name: &String| name.is_empty(),
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
                        let __cachet_fake_return: String = loop {};
                        return __cachet_fake_return;
                    }
                    id.to_string()
                },
                ::cachet::__private::pick_value(),
            )
            .await
    }
}
